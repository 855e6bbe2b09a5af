//! Exclusion filter: nodes this one instance must not use (the source of a migration, the node it is being moved
//! off, a choice undone by backtracking).

use super::{Context, FilterPlugin};
use crate::snapshot::NodeIdx;
use fos_api::plan::Rejection;

/// Refuses the request's excluded nodes.
#[derive(Debug, Clone, Copy)]
pub struct Exclusion;

impl FilterPlugin for Exclusion {
    fn name(&self) -> &'static str {
        "exclusion"
    }

    fn passes(&self, cx: &Context<'_>, n: NodeIdx) -> bool {
        cx.request.excluded.binary_search(&n).is_err()
    }

    fn explain(&self, cx: &Context<'_>, n: NodeIdx) -> Option<Rejection> {
        (!self.passes(cx, n)).then(|| Rejection::Excluded { because: "the instance is moved away from it".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn refuses_only_excluded_nodes() {
        let mut t = Fixture::new(vec![node("a"), node("b")], component("c"));
        t.exclude("a");
        assert!(matches!(t.explain(&Exclusion, "a"), Some(Rejection::Excluded { .. })));
        assert_eq!(t.explain(&Exclusion, "b"), None);
        t.assert_consistent(&Exclusion);
    }
}
