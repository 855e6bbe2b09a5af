//! Loading with positions: structural errors (unknown fields with a suggestion, wrong types, bad kinds) and
//! violations come out as `FILE:LINE:COL: message`, as many at once as can be found.

use super::*;

const APP: &str = "apiVersion: fos/v1
kind: Application
metadata:
  name: shop
spec:
  components:
    - name: a
      need: [b]
      entity: {kind: native, command: [x]}
    - name: b
      need:
        - a
      entity: {kind: native, command: [x]}
";

#[test]
fn a_cycle_is_reported_at_the_line_of_the_offending_need() {
    let loaded = load_str("app.yaml", APP).unwrap();
    let d = check(&loaded);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].to_string().split(" (").next().unwrap(), "app.yaml:12:11: dependency cycle: a -> b -> a");
}

#[test]
fn unknown_fields_suggest_the_closest_name_at_the_key() {
    let text = APP
        .replace("      need: [b]\n", "      ned: [b]\n")
        .replace("command: [x]}\n    - name: b", "comand: [x]}\n    - name: b");
    let e = load_str("app.yaml", &text).unwrap_err();
    let lines: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert!(lines.contains(&"app.yaml:8:7: unknown field `ned` (did you mean `need`?)".to_string()), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("app.yaml:9:") && l.contains("unknown field `comand` (did you mean `command`?)")),
        "{lines:#?}"
    );
}

#[test]
fn errors_in_several_components_are_all_reported() {
    let text = APP.replace("need: [b]", "replicas: many").replace("        - a\n", "        - 7\n        - {x: 1}\n");
    let e = load_str("app.yaml", &text).unwrap_err();
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!(e[0].position.line, 8);
    assert!(e[0].message.contains("spec.components[0].replicas: invalid type"), "{}", e[0]);
    assert_eq!(e[1].position.line, 12);
}

#[test]
fn bad_kind_and_api_version() {
    let e = load_str("x.yaml", "apiVersion: fos/v2\nkind: Aplication\n").unwrap_err();
    assert_eq!(e.len(), 2);
    assert_eq!(e[1].to_string(), "x.yaml:2:7: unknown kind `Aplication` (did you mean `Application`?)");
    let e = load_str("x.yaml", "apiVersion: fos/v1\nkind: Network\nmetadata: {name: n}\nspec: {type: vxlam}\n")
        .unwrap_err();
    assert_eq!(e[0].hint.as_deref(), Some("did you mean `vxlan`?"), "{e:#?}");
    assert_eq!(e[0].position.line, 4);
}

#[test]
fn server_side_violations_map_back_by_index_or_name() {
    let loaded = load_str("app.yaml", APP).unwrap();
    let v = fos_api::validate::validate(&[loaded[0].object.clone()]).remove(0);
    assert_eq!(locate(&loaded, &v).unwrap().position.line, 12);
    let mut moved = v.clone();
    moved.object.index = 5;
    assert_eq!(locate(&loaded, &moved).unwrap().position.line, 12, "found by kind and name");
    moved.object.name = "other".into();
    assert_eq!(locate(&loaded, &moved), None);
}

#[test]
fn multi_document_yaml_and_empty_documents() {
    let text = format!("---\n# nothing\n---\n{APP}---\napiVersion: fos/v1\nkind: Network\nmetadata: {{name: n}}\nspec: {{type: bridge}}\n");
    let loaded = load_str("m.yaml", &text).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[1].positions.value("spec.type").unwrap().line, 21);
}
