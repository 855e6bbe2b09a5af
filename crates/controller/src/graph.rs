//! The start order of an application's components from their `need`s: waves of components whose needs are all in
//! earlier waves (teardown runs the waves backwards). Validation refuses cycles; here a cycle simply ends the waves
//! with the remaining components together, so nothing loops.

use std::collections::BTreeSet;

use fos_api::ApplicationSpec;

/// The components of `app` in start waves.
pub fn start_waves(app: &ApplicationSpec) -> Vec<Vec<String>> {
    let names: BTreeSet<&str> = app.components.iter().map(|c| c.name.as_str()).collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut waves = Vec::new();
    while done.len() < names.len() {
        let wave: Vec<&str> = app
            .components
            .iter()
            .filter(|c| !done.contains(c.name.as_str()))
            .filter(|c| c.need.iter().all(|n| done.contains(n.as_str()) || !names.contains(n.as_str())))
            .map(|c| c.name.as_str())
            .collect();
        let wave = if wave.is_empty() {
            app.components.iter().map(|c| c.name.as_str()).filter(|n| !done.contains(n)).collect()
        } else {
            wave
        };
        done.extend(wave.iter().copied());
        waves.push(wave.into_iter().map(str::to_string).collect());
    }
    waves
}

/// The components that `need` `component`.
pub fn dependents<'a>(app: &'a ApplicationSpec, component: &str) -> Vec<&'a str> {
    app.components.iter().filter(|c| c.need.iter().any(|n| n == component)).map(|c| c.name.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fos_api::manifest::Component;
    use fos_api::EntitySpec;

    fn comp(name: &str, need: &[&str]) -> Component {
        let mut c = ApplicationSpec::single(name, EntitySpec::native(["true"])).components.remove(0);
        c.need = need.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn waves_follow_needs() {
        let app = ApplicationSpec {
            components: vec![comp("web", &["db", "cache"]), comp("db", &[]), comp("cache", &[]), comp("lb", &["web"])],
            ..Default::default()
        };
        assert_eq!(start_waves(&app), vec![vec!["db", "cache"], vec!["web"], vec!["lb"]]);
        assert_eq!(dependents(&app, "db"), ["web"]);
    }

    #[test]
    fn a_cycle_ends_in_one_wave() {
        let app = ApplicationSpec { components: vec![comp("a", &["b"]), comp("b", &["a"])], ..Default::default() };
        assert_eq!(start_waves(&app), vec![vec!["a", "b"]]);
    }
}
