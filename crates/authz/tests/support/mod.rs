//! Synthetic organizations for tests and the benchmark.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_authz::{BindingData, FolderData, SnapshotData, Subject};

/// A tree of folders `depth` levels below the root with `fanout` children each, returned with
/// every folder's id in creation order (the root first).
pub fn tree(depth: u32, fanout: u32) -> Vec<FolderData> {
    let mut folders = vec![FolderData { id: "fld_root".into(), parent: None, name: "root".into(), path: "/".into() }];
    let mut level = vec![0usize];
    for _ in 0..depth {
        let mut next = Vec::new();
        for &p in &level {
            for c in 0..fanout {
                let parent = folders[p].clone();
                let id = format!("fld_{}", folders.len());
                let path = if parent.path == "/" { format!("/f{c}") } else { format!("{}/f{c}", parent.path) };
                folders.push(FolderData { id, parent: Some(parent.id), name: format!("f{c}"), path });
                next.push(folders.len() - 1);
            }
        }
        level = next;
    }
    folders
}

/// A deterministic pseudo-random sequence (no dependency; the benchmark must be repeatable).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// The benchmark's organization: a 6-deep folder tree, `groups` groups with `members` users
/// each drawn from `users`, and `bindings` role bindings spread over folders, users and groups.
pub fn large_org(users: usize, groups: usize, members: usize, bindings: usize) -> SnapshotData {
    let folders = tree(6, 5); // 1 + 5 + 25 + … + 15625 = 19531 folders
    let mut rng = Lcg(42);
    let roles = ["viewer", "builder", "approver", "security-admin", "auditor"];
    let group_ids: Vec<String> = (0..groups).map(|g| format!("grp_{g}")).collect();
    let mut memberships = Vec::new();
    for g in &group_ids {
        for _ in 0..members {
            memberships.push((format!("prn_{}", rng.next(users)), g.clone()));
        }
    }
    memberships.sort();
    memberships.dedup();
    let bindings = (0..bindings)
        .map(|i| {
            let subject = if i % 2 == 0 {
                Subject::Group(group_ids[rng.next(groups)].clone())
            } else {
                Subject::Principal(format!("prn_{}", rng.next(users)))
            };
            // Bindings sit on the upper levels mostly, as real grants do.
            let folder = folders[rng.next(folders.len().min(1 + 5 + 25 + 125 + 625))].id.clone();
            BindingData { id: format!("rb_{i}"), role: roles[rng.next(roles.len())].into(), folder, subject }
        })
        .collect();
    SnapshotData {
        org_id: "org_bench".into(),
        org_name: "bench".into(),
        version: 1,
        folders,
        roles: Vec::new(),
        bindings,
        groups: group_ids.iter().map(|g| (g.clone(), g.replace("grp_", "group-"))).collect(),
        memberships,
        guardrails: Vec::new(),
    }
}
