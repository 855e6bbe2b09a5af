//! The user's situations, from the files in `manifests/scenarios/`: a GPIO-only gateway, a GPU node, Arm camera
//! boards on two sites, a database with a web tier that must be within 5 ms of it.

mod common;

use common::{scenario, violations};
use fos_api::InstanceId;
use fos_scheduler::{place_application, ClusterSnapshot, Options, Plan, Relaxation};

fn plan(name: &str) -> (Vec<fos_api::Node>, fos_api::Application, Plan) {
    let (nodes, app) = scenario(name);
    let snap = ClusterSnapshot::new(nodes.clone(), []).unwrap();
    let plan = place_application(&snap, "default", &app.metadata.name, &app.spec, &[], &Options::default()).unwrap();
    assert_eq!(violations(&nodes, &[], &app, &[], &plan), Vec::<String>::new(), "{plan}");
    (nodes, app, plan)
}

fn node_of<'p>(plan: &'p Plan, app: &str, short: &str) -> &'p str {
    let (component, replica) = short.rsplit_once('-').unwrap();
    let id = InstanceId::new("default", app, component, replica.parse().unwrap());
    &plan.placement(&id).unwrap_or_else(|| panic!("{short} not placed:\n{plan}")).node
}

#[test]
fn gpio_gateway_gets_the_gpio_work_each_with_its_own_chip() {
    let (_, _, plan) = plan("gpio-gateway");
    assert!(plan.is_complete(), "{plan}");
    let reader = plan.placements.iter().find(|p| p.instance.component == "sensor-reader").unwrap();
    let actuator = plan.placements.iter().find(|p| p.instance.component == "actuator").unwrap();
    assert_eq!((reader.node.as_str(), actuator.node.as_str()), ("gateway-1", "gateway-1"));
    assert_eq!(reader.devices.io.len(), 1);
    assert_eq!(actuator.devices.io.len(), 1);
    assert_ne!(reader.devices.io, actuator.devices.io, "two entities never share a GPIO chip");
    // The aggregator is a container: the gateway runs native processes only, so it goes to the server.
    assert_eq!(node_of(&plan, "line-control", "aggregator-0"), "server-1");
    assert_eq!(plan.start_order, vec![vec!["sensor-reader".to_string()], vec!["actuator".into(), "aggregator".into()]]);
}

#[test]
fn gpio_gateway_refuses_a_third_gpio_user_and_says_why() {
    let (nodes, mut app) = scenario("gpio-gateway");
    let mut buzzer = app.spec.components[1].clone();
    buzzer.name = "buzzer".into();
    app.spec.components.push(buzzer);
    let snap = ClusterSnapshot::new(nodes, []).unwrap();
    let plan = place_application(&snap, "default", "line-control", &app.spec, &[], &Options::default()).unwrap();
    assert_eq!(plan.unschedulable.len(), 1, "{plan}");
    let u = &plan.unschedulable[0];
    let text = u.to_string();
    assert!(text.contains("gateway-1: needs 1 gpio, has 0 free of 2"), "{text}");
    assert!(text.contains("server-1: needs 1 gpio, has none"), "{text}");
    assert!(matches!(&u.relaxation, Some(Relaxation::FreeCapacity { node, .. }) if node == "gateway-1"), "{text}");
}

#[test]
fn gpu_node_takes_one_inference_and_the_second_is_explained() {
    let (_, _, plan) = plan("gpu-node");
    assert_eq!(node_of(&plan, "video-analytics", "inference-0"), "gpu-1");
    let inference = plan.placements.iter().find(|p| p.instance.component == "inference").unwrap();
    assert_eq!(inference.devices.accelerators, vec!["gpu0".to_string()]);
    // Preprocessing prefers the inference node, which has room.
    assert_eq!(node_of(&plan, "video-analytics", "preprocess-0"), "gpu-1");
    assert_eq!(plan.unschedulable.len(), 1);
    let u = &plan.unschedulable[0];
    assert_eq!((u.component.as_str(), u.placed, u.replicas), ("inference", 1, 2));
    let text = u.to_string();
    assert!(text.contains("3 nodes (cpu-1, cpu-2, cpu-3): needs 1 cuda, has none"), "{text}");
    assert!(text.contains("gpu-1: needs 1 cuda, has 0 free of 1"), "{text}");
    assert_eq!(u.relaxation, Some(Relaxation::FewerReplicas { replicas: 1 }));
}

#[test]
fn arm_cameras_on_two_sites_each_with_a_detector_on_its_site() {
    let (nodes, _, plan) = plan("arm-cameras");
    assert!(plan.is_complete(), "{plan}");
    let site =
        |node: &str| nodes.iter().find(|n| n.metadata.name == node).unwrap().metadata.labels.get("site").cloned();
    let mut capture_nodes: Vec<&str> = (0..4).map(|r| node_of(&plan, "site-watch", &format!("capture-{r}"))).collect();
    capture_nodes.sort();
    assert_eq!(capture_nodes, vec!["cam-a1", "cam-a2", "cam-b1", "cam-b2"], "one capture per camera board");
    let detector_sites: Vec<Option<String>> =
        (0..2).map(|r| site(node_of(&plan, "site-watch", &format!("detector-{r}")))).collect();
    for c in &capture_nodes {
        assert!(detector_sites.contains(&site(c)), "{c} has no detector on its site:\n{plan}");
    }
    for p in plan.placements.iter().filter(|p| p.instance.component == "capture") {
        assert_eq!(p.devices.io, vec!["video0".to_string()]);
    }
}

#[test]
fn arm_cameras_a_fifth_capture_has_no_camera_board_left() {
    let (nodes, mut app) = scenario("arm-cameras");
    app.spec.components[0].replicas = 5;
    let snap = ClusterSnapshot::new(nodes, []).unwrap();
    let plan = place_application(&snap, "default", "site-watch", &app.spec, &[], &Options::default()).unwrap();
    let u = &plan.unschedulable[0];
    let text = u.to_string();
    assert_eq!(u.unplaced, vec![InstanceId::new("default", "site-watch", "capture", 4)]);
    assert!(text.contains("3 nodes (cloud-1, edge-a, edge-b): arch x86_64 != aarch64"), "{text}");
    assert!(text.contains("4 nodes (cam-a1, cam-a2, cam-b1, …): needs 1 usb, has 0 free of 1"), "{text}");
    assert_eq!(u.relaxation, Some(Relaxation::FewerReplicas { replicas: 4 }));
}

#[test]
fn db_with_a_web_tier_within_5ms() {
    let (_, _, plan) = plan("db-web");
    assert!(plan.is_complete(), "{plan}");
    assert_eq!(node_of(&plan, "shop", "db-0"), "db-1");
    for r in 0..2 {
        let n = node_of(&plan, "shop", &format!("web-{r}"));
        assert!(["db-1", "web-1", "web-2"].contains(&n), "web-{r} on {n}, 25 ms from the db");
    }
    assert_ne!(node_of(&plan, "shop", "web-0"), node_of(&plan, "shop", "web-1"), "replicas spread");
    assert_eq!(plan.start_order, vec![vec!["db".to_string()], vec!["web".into()]]);
}

#[test]
fn db_with_too_many_web_replicas_near_it() {
    let (nodes, mut app) = scenario("db-web");
    app.spec.components[1].replicas = 7;
    let snap = ClusterSnapshot::new(nodes, []).unwrap();
    let plan = place_application(&snap, "default", "shop", &app.spec, &[], &Options::default()).unwrap();
    let u = &plan.unschedulable[0];
    let text = u.to_string();
    assert_eq!((u.placed, u.replicas), (6, 7), "{text}");
    assert!(text.contains("far-1: web must be within 5ms of db; db is on db-1: rtt 25ms"), "{text}");
    assert!(text.contains("2 nodes (web-1, web-2): needs 2 cpu, has 0 free of 4"), "{text}");
    assert!(text.contains("db-1: needs 2 cpu, has 0 free of 8"), "{text}");
    assert_eq!(u.relaxation, Some(Relaxation::FewerReplicas { replicas: 6 }));
}

#[test]
fn db_web_without_the_near_nodes_suggests_relaxing_the_latency_rule() {
    let (nodes, app) = scenario("db-web");
    let nodes: Vec<_> = nodes.into_iter().filter(|n| n.metadata.name == "db-1" || n.metadata.name == "far-1").collect();
    let mut app = app;
    app.spec.components[0].entity.resources.cpu = Some("8".into());
    let snap = ClusterSnapshot::new(nodes, []).unwrap();
    let plan = place_application(&snap, "default", "shop", &app.spec, &[], &Options::default()).unwrap();
    let u = &plan.unschedulable[0];
    assert_eq!(u.component, "web");
    assert!(
        matches!(&u.relaxation, Some(Relaxation::PreferProximity { from, to, nodes: 1, .. }) if from == "web" && to == "db"),
        "{u}"
    );
}

#[test]
fn a_plan_reads_back_from_json_as_the_api_returns_it() {
    let (_, _, plan) = plan("gpu-node");
    let json = serde_json::to_string(&plan).unwrap();
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    assert_eq!(back.to_string(), plan.to_string());
}
