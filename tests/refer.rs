//! Transfers back into an existing contact centre (issue 15): a PBX sends a caller to voxnav,
//! and a hotline transfer to a queue listed under `transfer.refer` is done by SIP REFER
//! (RFC 3515) instead of a bridge. `sip-test/pbx_refer.xml` is the PBX: it checks the REFER's
//! Refer-To, Referred-By and Contact, accepts it (202), reports its own call to the target in
//! NOTIFYs (100, then 200), and voxnav hangs up: the caller is the PBX's. A PBX that refuses
//! the REFER (`pbx_refer_refused.xml`, 603) leaves the caller with voxnav, who hears the
//! transfer's fallback.

use std::time::Duration;

use voxnav::testkit::{
    free_udp_port, records, serve_ready, sipp_scenario, temp_dir, wait_for_line,
};

const PLAN: &str = "name: desk\nstart: hand\nnodes:\n  hand:\n    transfer: { queue: support, \
    reason: \"caller asked for a human\", fallback: busy }\n  busy:\n    hangup: \"Nobody is free.\"\n";

fn pbx(scenario: &str, voxnav: &str, dir: &std::path::Path) -> std::process::Output {
    sipp_scenario(scenario)
        .args(["-m", "1", "-p", &free_udp_port().to_string()])
        .args(["-mp", &(free_udp_port() & !1).to_string()])
        .arg(voxnav)
        .current_dir(dir)
        .output()
        .expect("sipp")
}

#[test]
fn a_queue_of_the_pbx_is_transferred_by_refer_and_a_refusal_plays_the_fallback() {
    let dir = temp_dir("refer");
    std::fs::write(dir.join("desk.yaml"), PLAN).unwrap();
    let refer = "transfer:\n  refer:\n    support: sip:support@192.0.2.30\n";
    std::fs::write(dir.join("voxnav.yaml"), refer).unwrap();
    let (plan, config) = (dir.join("desk.yaml"), dir.join("voxnav.yaml"));
    let args = [
        "--dialplan".as_ref(),
        plan.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
        "--asr-jobs".as_ref(),
        "1".as_ref(),
    ];
    let (_server, lines, voxnav) = serve_ready(env!("CARGO_BIN_EXE_voxnav"), &args);

    // Accepted, then the PBX's call answers: voxnav hangs up, the call counts as transferred.
    let out = pbx("pbx_refer.xml", &voxnav, &dir);
    assert!(
        out.status.success(),
        "the PBX saw the REFER it expects, two NOTIFYs answered and a BYE: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The transfer's records: dialling the REFER target, connected (202), ended (the PBX's
    // call answered).
    let transfer = |status: &str| {
        let line = wait_for_line(&lines, "voxnav: transfer ", Duration::from_secs(10))
            .unwrap_or_else(|| panic!("a transfer record ({status})"));
        let record = records(&[line], "transfer").remove(0);
        assert_eq!(record["status"], status, "{record}");
        record
    };
    assert_eq!(
        transfer("dialling")["agent"],
        "refer:sip:support@192.0.2.30"
    );
    transfer("connected");
    let ended = transfer("ended");
    assert!(
        ended["why"]
            .as_str()
            .unwrap()
            .contains("transferred by REFER"),
        "{ended}"
    );

    // Refused: the caller stays, hears the fallback, and voxnav hangs up after it.
    let out = pbx("pbx_refer_refused.xml", &voxnav, &dir);
    assert!(
        out.status.success(),
        "refused, then a BYE: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    transfer("dialling");
    let failed = transfer("failed");
    assert!(
        failed["why"].as_str().unwrap().contains("603 Declined"),
        "{failed}"
    );
    let decision = wait_for_line(&lines, "Nobody is free", Duration::from_secs(10))
        .expect("the fallback's decision");
    assert!(decision.contains("transfer failed"), "{decision}");
    let _ = std::fs::remove_dir_all(&dir);
}
