use gatehouse_core::audit::{Actor, ActorKind, ActorRef, AuditDraft, Outcome, ResourceRef};
use gatehouse_core::{OrgId, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::{CheckpointSigner, GENESIS, chain};

fn draft(org: &OrgId, i: u64) -> AuditDraft {
    AuditDraft {
        org_id: org.clone(),
        actor: Actor {
            who: ActorRef { kind: ActorKind::User, id: "prn_1".into(), name: "ana@acme.example".into() },
            on_behalf_of: vec![],
        },
        action: "app.revision.push".into(),
        resource: ResourceRef { kind: "app".into(), id: format!("app_{i}"), path: Some("/finance".into()) },
        outcome: Outcome::Success,
        reason: None,
        request_id: Some(format!("req-{i}")),
        source: Some("127.0.0.1".into()),
        user_agent: None,
        details: serde_json::json!({ "n": i, "nested": { "b": 1, "a": [1, 2] } }),
    }
}

/// A chain of `n` records with a checkpoint every `every` records.
fn log(n: u64, every: u64, signer: &CheckpointSigner) -> (Vec<AuditRecord>, Vec<Checkpoint>) {
    let org = OrgId::generate();
    let mut prev = GENESIS;
    let mut records = Vec::new();
    let mut checkpoints = Vec::new();
    let mut pending: Vec<Hash> = Vec::new();
    for seq in 1..=n {
        let r = chain(draft(&org, seq), seq, Timestamp::from_millis(1_790_000_000_000 + seq as i64), &prev);
        prev = decode(&r.hash).unwrap();
        pending.push(prev);
        records.push(r);
        if pending.len() as u64 == every {
            let first = seq + 1 - every;
            checkpoints.push(signer.sign(&org, first, &pending, Timestamp::from_millis(1_790_000_000_000)).unwrap());
            pending.clear();
        }
    }
    (records, checkpoints)
}

fn signer(seed: u8) -> CheckpointSigner {
    CheckpointSigner::from_seed(&[seed; 32])
}

fn check(records: &[AuditRecord], cps: &[Checkpoint], s: &CheckpointSigner) -> Result<VerifyReport, Tamper> {
    verify(records, cps, &s.verifying_key(), &GENESIS)
}

#[test]
fn an_untouched_log_verifies() {
    let s = signer(1);
    let (records, cps) = log(22, 5, &s);
    let report = check(&records, &cps, &s).unwrap();
    assert_eq!(
        (report.first_seq, report.last_seq, report.records, report.checkpoints, report.unsigned_tail),
        (1, 22, 22, 4, 2)
    );
}

#[test]
fn the_tamper_matrix_names_the_first_bad_sequence() {
    let s = signer(1);
    let (records, cps) = log(20, 5, &s);

    // A changed byte.
    let mut changed = records.clone();
    changed[6].draft.action = "app.revision.pusH".into();
    let t = check(&changed, &cps, &s).unwrap_err();
    assert_eq!((t.seq, t.kind), (7, TamperKind::Altered));

    // A changed detail deep inside the JSON.
    let mut changed = records.clone();
    changed[11].draft.details["nested"]["a"][1] = serde_json::json!(3);
    assert_eq!(check(&changed, &cps, &s).unwrap_err().seq, 12);

    // A deleted record.
    let mut deleted = records.clone();
    deleted.remove(6);
    let t = check(&deleted, &cps, &s).unwrap_err();
    assert_eq!((t.seq, t.kind), (7, TamperKind::Gap));

    // Two records swapped.
    let mut swapped = records.clone();
    swapped.swap(6, 7);
    let t = check(&swapped, &cps, &s).unwrap_err();
    assert_eq!((t.seq, t.kind), (7, TamperKind::Gap));

    // The middle truncated.
    let mut truncated = records.clone();
    truncated.drain(6..12);
    let t = check(&truncated, &cps, &s).unwrap_err();
    assert_eq!((t.seq, t.kind), (7, TamperKind::Gap));

    // A record replaced with its sequence number kept: the link to it breaks.
    let mut replaced = records.clone();
    let org = replaced[0].draft.org_id.clone();
    replaced[6] = chain(draft(&org, 99), 7, replaced[6].time, &GENESIS);
    let t = check(&replaced, &cps, &s).unwrap_err();
    assert_eq!((t.seq, t.kind), (7, TamperKind::BrokenLink));

    // Someone with database access rewrites from record 7 on and re-chains every hash: only the
    // signed checkpoints can tell, and they do, naming the checkpoint's range.
    let mut rewritten = records[..6].to_vec();
    let mut prev = decode(&records[5].hash).unwrap();
    for r in &records[6..] {
        let mut d = r.draft.clone();
        d.outcome = Outcome::Denied;
        let nr = chain(d, r.seq, r.time, &prev);
        prev = decode(&nr.hash).unwrap();
        rewritten.push(nr);
    }
    let t = check(&rewritten, &cps, &s).unwrap_err();
    assert_eq!((t.seq, t.kind), (6, TamperKind::CheckpointMismatch), "{t}");

    // ...and re-signing the checkpoints with a key of their own is a forgery.
    let forger = signer(2);
    let forged: Vec<Checkpoint> = cps
        .iter()
        .map(|cp| {
            let hashes: Vec<Hash> = rewritten[(cp.first_seq - 1) as usize..cp.last_seq as usize]
                .iter()
                .map(|r| decode(&r.hash).unwrap())
                .collect();
            forger.sign(&cp.org_id, cp.first_seq, &hashes, cp.time).unwrap()
        })
        .collect();
    let t = check(&rewritten, &forged, &s).unwrap_err();
    assert_eq!((t.seq, t.kind), (1, TamperKind::ForgedCheckpoint));

    // A checkpoint whose root was edited no longer matches its signature.
    let mut edited = cps.clone();
    edited[2].merkle_root = hex::encode([7u8; 32]);
    let t = check(&records, &edited, &s).unwrap_err();
    assert_eq!((t.seq, t.kind), (11, TamperKind::ForgedCheckpoint));
}

#[test]
fn verification_can_start_after_pruning() {
    let s = signer(1);
    let (records, cps) = log(20, 5, &s);
    // Keep records from 11 on; anchor on the retained checkpoint's predecessor head.
    let anchor = decode(&records[9].hash).unwrap();
    let report = verify(&records[10..], &cps, &s.verifying_key(), &anchor).unwrap();
    assert_eq!((report.first_seq, report.checkpoints), (11, 2));
    // A wrong anchor is caught at the first retained record.
    let t = verify(&records[10..], &cps, &s.verifying_key(), &GENESIS).unwrap_err();
    assert_eq!(t.seq, 11);
}

#[test]
fn records_survive_a_json_round_trip() {
    // Verification of an exported file re-reads records from JSON; hashes must still match.
    let s = signer(1);
    let (records, cps) = log(7, 3, &s);
    let text: Vec<String> = records.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    let back: Vec<AuditRecord> = text.iter().map(|t| serde_json::from_str(t).unwrap()).collect();
    let cps_back: Vec<Checkpoint> =
        cps.iter().map(|c| serde_json::from_str(&serde_json::to_string(c).unwrap()).unwrap()).collect();
    check(&back, &cps_back, &s).unwrap();
}

proptest! {
    #[test]
    fn any_single_change_is_detected(n in 2u64..40, every in 1u64..8, victim in 0usize..40, field in 0u8..4) {
        let s = signer(3);
        let (mut records, cps) = log(n, every, &s);
        let i = victim % records.len();
        match field {
            0 => records[i].draft.action.push('x'),
            1 => records[i].draft.resource.id.push('x'),
            2 => records[i].time = Timestamp::from_millis(records[i].time.as_millis() + 1),
            _ => records[i].draft.details = serde_json::json!({ "n": 1_000_000 }),
        }
        let t = check(&records, &cps, &s).unwrap_err();
        prop_assert_eq!(t.seq, i as u64 + 1);
    }
}
