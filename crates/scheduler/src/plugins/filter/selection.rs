//! Selection filter: the component's explicit `nodes` subset and its `nodeSelector` labels.

use super::{Context, FilterPlugin};
use crate::snapshot::NodeIdx;
use fos_api::plan::Rejection;

/// Refuses nodes outside the component's `nodes` list or without its `nodeSelector` labels.
#[derive(Debug, Clone, Copy)]
pub struct Selection;

impl FilterPlugin for Selection {
    fn name(&self) -> &'static str {
        "selection"
    }

    fn passes(&self, cx: &Context<'_>, n: NodeIdx) -> bool {
        let needs = cx.request.needs;
        if let Some(list) = &needs.nodes {
            if list.binary_search(&n).is_err() {
                return false;
            }
        }
        match &needs.selector_ids {
            Some(ids) => ids.iter().all(|(k, v)| cx.snapshot.label_at(*k, n) == *v),
            None => false,
        }
    }

    fn explain(&self, cx: &Context<'_>, n: NodeIdx) -> Option<Rejection> {
        let needs = cx.request.needs;
        if needs.nodes.as_ref().is_some_and(|list| list.binary_search(&n).is_err()) {
            return Some(Rejection::NotListed);
        }
        let labels = &cx.snapshot.node(n).labels;
        needs.selector.iter().find(|(k, v)| labels.get(k) != Some(v)).map(|(k, v)| Rejection::Label {
            key: k.clone(),
            wanted: v.clone(),
            has: labels.get(k).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn node_list_then_labels() {
        let mut c = component("c");
        c.constraints.nodes = vec!["a".into(), "b".into(), "ghost".into()];
        c.constraints.node_selector.insert("site".into(), "north".into());
        let t = Fixture::new(
            vec![labelled("a", &[("site", "north")]), labelled("b", &[("site", "south")]), node("c"), node("d")],
            c,
        );
        assert_eq!(t.explain(&Selection, "a"), None);
        assert_eq!(
            t.explain(&Selection, "b"),
            Some(Rejection::Label { key: "site".into(), wanted: "north".into(), has: Some("south".into()) })
        );
        assert_eq!(t.explain(&Selection, "d"), Some(Rejection::NotListed));
        t.assert_consistent(&Selection);
    }

    #[test]
    fn missing_label_is_named() {
        let mut c = component("c");
        c.constraints.node_selector.insert("camera".into(), "yes".into());
        let t = Fixture::new(vec![node("a")], c);
        assert_eq!(t.explain(&Selection, "a").unwrap().to_string(), "no label camera (wants camera=yes)");
    }
}
