//! The store's behaviour, run against both SQLite and PostgreSQL.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use gatehouse_core::{
    AppId, AppStatus, FolderId, OrgId, PrincipalId, PrincipalKind, Provenance, Scope, Sensitivity, TokenId,
};
use gatehouse_store::Page;
use gatehouse_store::testing::{ctx, outside_ctx};
use gatehouse_store::{
    AppPatch, Bootstrap, NewApp, NewOrg, NewPrincipal, NewRevision, Store, StoreError, TokenRejection,
};

macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = gatehouse_store::testing::sqlite().await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(gatehouse_store::testing::postgres().await).await;
                }
            )*
        }
    };
}

store_tests!(
    bootstrap_happens_once,
    tenants_cannot_reach_each_other,
    folder_tree_rules,
    apps_and_their_rules,
    revisions_are_content_addressed_and_immutable,
    token_lifecycle,
    deactivation_revokes_tokens,
    store_is_ready,
    concurrent_moves_cannot_form_a_cycle,
    concurrent_pushes_number_revisions_densely,
    changes_are_recorded_in_a_verifiable_chain,
    concurrent_writers_keep_the_chain_contiguous,
    a_change_whose_record_fails_is_not_made,
    audit_records_cannot_be_edited_or_deleted,
);

fn new_org(name: &str) -> NewOrg {
    NewOrg {
        name: name.to_owned(),
        display_name: name.to_uppercase(),
        admin_email: format!("admin@{name}.example"),
        admin_token_ttl: None,
    }
}

async fn org(store: &Store, name: &str) -> Bootstrap {
    store.create_org(new_org(name), &outside_ctx()).await.unwrap()
}

fn revision(author: &PrincipalId, content: &str) -> NewRevision {
    let digest = format!("{:0<64}", hex_of(content));
    NewRevision {
        digest,
        archive: content.as_bytes().to_vec(),
        parent: None,
        author_id: author.clone(),
        provenance: Provenance { agent: Some("claude-code".into()), model: None, prompt_ids: vec!["p1".into()] },
        message: None,
        file_count: 1,
        content_bytes: content.len() as i64,
        manifest: serde_json::json!({"app": {"name": "x"}}),
    }
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect::<String>().chars().take(64).collect()
}

async fn app(store: &Store, b: &Bootstrap, name: &str) -> gatehouse_core::App {
    let root = store.root_folder(&b.org.id).await.unwrap();
    store
        .create_app(
            &b.org.id,
            NewApp {
                name: name.into(),
                folder_id: root.id,
                owner_id: b.admin.id.clone(),
                sensitivity: Sensitivity::Normal,
                description: None,
            },
            &ctx(&b.org.id),
        )
        .await
        .unwrap()
}

async fn bootstrap_happens_once(store: Store) {
    let first = store.bootstrap_if_empty(new_org("acme")).await.unwrap().expect("first start bootstraps");
    assert!(first.org.operator);
    assert!(first.token.secret.starts_with("gat_"));
    assert!(store.bootstrap_if_empty(new_org("other")).await.unwrap().is_none());
    let who = store.authenticate(&first.token.secret).await.unwrap().unwrap();
    assert_eq!(who.id, first.admin.id);
    assert_eq!(who.scope, Scope::Admin);
    assert!(who.operator);
    assert_eq!(store.list_orgs().await.unwrap().len(), 1);
    // Orgs created later are tenants, not operators.
    let tenant = org(&store, "tenant").await;
    assert!(!tenant.org.operator);
    assert!(!store.authenticate(&tenant.token.secret).await.unwrap().unwrap().operator);
    assert!(matches!(store.create_org(new_org("tenant"), &outside_ctx()).await, Err(StoreError::Conflict(_))));
}

async fn tenants_cannot_reach_each_other(store: Store) {
    let a = org(&store, "alpha").await;
    let b = org(&store, "beta").await;
    let a_app = app(&store, &a, "shared-name").await;
    let b_app = app(&store, &b, "shared-name").await; // same name in another org is fine
    let a_folder = store.create_folder(&a.org.id, None, "finance", &ctx(&a.org.id)).await.unwrap();
    store.push_revision(&a.org.id, &a_app.id, revision(&a.admin.id, "secret-a"), &ctx(&a.org.id)).await.unwrap();
    let a_rev = store.get_revision(&a.org.id, &a_app.id, "head").await.unwrap();

    // Org B, guessing org A's ids, finds nothing.
    let bid = &b.org.id;
    assert!(matches!(store.get_app(bid, &a_app.id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.get_folder(bid, &a_folder.id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.get_principal(bid, &a.admin.id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.get_token(bid, &a.token.token.id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.revoke_token(bid, &a.token.token.id, &ctx(bid)).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.get_revision(bid, &a_app.id, &a_rev.digest).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.get_archive(bid, &a_rev.digest).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(
        store.update_app(bid, &a_app.id, AppPatch::default(), &ctx(bid)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.update_folder(bid, &a_folder.id, Some("x"), None, &ctx(bid)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(store.delete_folder(bid, &a_folder.id, &ctx(bid)).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(
        store.push_revision(bid, &a_app.id, revision(&b.admin.id, "x"), &ctx(bid)).await,
        Err(StoreError::NotFound { .. })
    ));
    // B cannot place its objects into A's folders or give them A's owners.
    let cross = store
        .create_app(
            bid,
            NewApp {
                name: "cross".into(),
                folder_id: a_folder.id.clone(),
                owner_id: b.admin.id.clone(),
                sensitivity: Sensitivity::Low,
                description: None,
            },
            &ctx(bid),
        )
        .await;
    assert!(matches!(cross, Err(StoreError::NotFound { .. })));
    assert!(matches!(
        store.create_folder(bid, Some(&a_folder.id), "x", &ctx(bid)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .update_app(
                bid,
                &b_app.id,
                AppPatch { owner_id: Some(a.admin.id.clone()), ..Default::default() },
                &ctx(bid)
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // Listings are scoped.
    assert_eq!(store.list_apps(bid, None, &Page::all()).await.unwrap(), vec![b_app.clone()]);
    assert!(store.list_folders(bid).await.unwrap().iter().all(|f| f.id != a_folder.id));
    assert!(store.list_tokens(bid, None, &Page::all()).await.unwrap().iter().all(|t| t.id != a.token.token.id));
    assert!(store.list_revisions(bid, &a_app.id, 10, None).await.unwrap().is_empty());
    // Made-up ids are simply not found.
    assert!(store.get_app(bid, &AppId::generate()).await.is_err());
    assert!(store.get_org(&OrgId::generate()).await.is_err());
}

async fn folder_tree_rules(store: Store) {
    let a = org(&store, "acme").await;
    let o = &a.org.id;
    let root = store.root_folder(o).await.unwrap();
    assert_eq!(root.path, "/");
    let finance = store.create_folder(o, None, "finance", &ctx(o)).await.unwrap();
    let refunds = store.create_folder(o, Some(&finance.id), "refunds", &ctx(o)).await.unwrap();
    let deep = store.create_folder(o, Some(&refunds.id), "deep", &ctx(o)).await.unwrap();
    assert_eq!(deep.path, "/finance/refunds/deep");
    assert_eq!(store.folder_by_path(o, "/finance/refunds").await.unwrap().id, refunds.id);
    assert!(matches!(store.create_folder(o, None, "finance", &ctx(o)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.create_folder(o, None, "Bad Name", &ctx(o)).await, Err(StoreError::Invalid(_))));
    assert!(matches!(
        store.create_folder(o, Some(&FolderId::generate()), "x", &ctx(o)).await,
        Err(StoreError::NotFound { .. })
    ));

    // Cycles: into itself, into a child, into a grandchild.
    for target in [&finance.id, &refunds.id, &deep.id] {
        let err = store.update_folder(o, &finance.id, None, Some(target), &ctx(o)).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(ref m) if m.contains("into itself")), "{err}");
    }
    // A legal move and a rename.
    let moved = store.update_folder(o, &deep.id, Some("shallow"), Some(&root.id), &ctx(o)).await.unwrap();
    assert_eq!(moved.path, "/shallow");
    assert!(matches!(
        store.update_folder(o, &moved.id, Some("finance"), None, &ctx(o)).await,
        Err(StoreError::Conflict(_))
    ));
    // The root stays put.
    assert!(store.update_folder(o, &root.id, Some("x"), None, &ctx(o)).await.is_err());
    assert!(store.delete_folder(o, &root.id, &ctx(o)).await.is_err());
    // Only empty folders can be deleted.
    assert!(matches!(store.delete_folder(o, &finance.id, &ctx(o)).await, Err(StoreError::Invalid(_))));
    let app = store
        .create_app(
            o,
            NewApp {
                name: "tool".into(),
                folder_id: refunds.id.clone(),
                owner_id: a.admin.id.clone(),
                sensitivity: Sensitivity::Normal,
                description: None,
            },
            &ctx(o),
        )
        .await
        .unwrap();
    assert!(
        matches!(store.delete_folder(o, &refunds.id, &ctx(o)).await, Err(StoreError::Invalid(ref m)) if m.contains("app"))
    );
    store
        .update_app(o, &app.id, AppPatch { folder_id: Some(root.id.clone()), ..Default::default() }, &ctx(o))
        .await
        .unwrap();
    store.delete_folder(o, &refunds.id, &ctx(o)).await.unwrap();
    store.delete_folder(o, &finance.id, &ctx(o)).await.unwrap();
    let paths: Vec<String> = store.list_folders(o).await.unwrap().into_iter().map(|f| f.path).collect();
    assert_eq!(paths, ["/", "/shallow"]);
}

async fn apps_and_their_rules(store: Store) {
    let a = org(&store, "acme").await;
    let o = &a.org.id;
    let first = app(&store, &a, "refunds").await;
    assert_eq!(first.status, AppStatus::Active);
    let root = store.root_folder(o).await.unwrap();
    let dup = store
        .create_app(
            o,
            NewApp {
                name: "refunds".into(),
                folder_id: root.id.clone(),
                owner_id: a.admin.id.clone(),
                sensitivity: Sensitivity::High,
                description: None,
            },
            &ctx(o),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("refunds")));
    assert_eq!(store.app_by_name(o, "refunds").await.unwrap().id, first.id);
    let archived = store
        .update_app(
            o,
            &first.id,
            AppPatch {
                status: Some(AppStatus::Archived),
                sensitivity: Some(Sensitivity::High),
                description: Some(Some("old".into())),
                ..Default::default()
            },
            &ctx(o),
        )
        .await
        .unwrap();
    assert_eq!((archived.status, archived.sensitivity), (AppStatus::Archived, Sensitivity::High));
    assert_eq!(store.get_app(o, &first.id).await.unwrap(), archived);
    let push = store.push_revision(o, &first.id, revision(&a.admin.id, "x"), &ctx(o)).await;
    assert!(matches!(push, Err(StoreError::Invalid(ref m)) if m.contains("archived")));
}

async fn revisions_are_content_addressed_and_immutable(store: Store) {
    let a = org(&store, "acme").await;
    let o = &a.org.id;
    let app = app(&store, &a, "refunds").await;
    let one = store.push_revision(o, &app.id, revision(&a.admin.id, "one"), &ctx(o)).await.unwrap();
    assert!(one.created);
    assert_eq!((one.revision.number, one.revision.parent.as_deref()), (1, None));
    assert_eq!(one.revision.provenance.agent.as_deref(), Some("claude-code"));
    let again = store.push_revision(o, &app.id, revision(&a.admin.id, "one"), &ctx(o)).await.unwrap();
    assert!(!again.created, "identical content is idempotent");
    assert_eq!(again.revision, one.revision);
    let two = store.push_revision(o, &app.id, revision(&a.admin.id, "two"), &ctx(o)).await.unwrap();
    assert_eq!(two.revision.number, 2);
    assert_eq!(two.revision.parent.as_deref(), Some(one.revision.digest.as_str()), "parent defaults to head");
    let mut branch = revision(&a.admin.id, "three");
    branch.parent = Some(one.revision.digest.clone());
    let three = store.push_revision(o, &app.id, branch, &ctx(o)).await.unwrap();
    assert_eq!(three.revision.parent.as_deref(), Some(one.revision.digest.as_str()));
    let mut orphan = revision(&a.admin.id, "four");
    orphan.parent = Some("f".repeat(64));
    assert!(matches!(store.push_revision(o, &app.id, orphan, &ctx(o)).await, Err(StoreError::Invalid(_))));

    assert_eq!(store.get_app(o, &app.id).await.unwrap().head_revision.as_deref(), Some(three.revision.digest.as_str()));
    let history = store.list_revisions(o, &app.id, 10, None).await.unwrap();
    assert_eq!(history.iter().map(|r| r.number).collect::<Vec<_>>(), [3, 2, 1]);
    assert_eq!(store.list_revisions(o, &app.id, 10, Some(3)).await.unwrap().len(), 2);
    assert_eq!(store.get_revision(o, &app.id, "head").await.unwrap().number, 3);
    assert_eq!(store.get_revision(o, &app.id, "2").await.unwrap().number, 2);
    assert_eq!(store.get_revision(o, &app.id, &two.revision.digest[..12]).await.unwrap().number, 2);
    // "aaaa1" and "aaaa2" give digests starting 61616161…, so a 7-digit prefix is ambiguous.
    store.push_revision(o, &app.id, revision(&a.admin.id, "aaaa1"), &ctx(o)).await.unwrap();
    store.push_revision(o, &app.id, revision(&a.admin.id, "aaaa2"), &ctx(o)).await.unwrap();
    assert!(
        matches!(store.get_revision(o, &app.id, "6161616").await, Err(StoreError::Invalid(ref m)) if m.contains("ambiguous"))
    );
    assert!(matches!(store.get_revision(o, &app.id, "zz; drop").await, Err(StoreError::Invalid(_))));
    assert_eq!(store.get_archive(o, &one.revision.digest).await.unwrap(), b"one");

    // The database itself refuses to change history.
    assert!(store.tamper_with_revision_for_test(o, &app.id, &one.revision.digest).await.is_err());
    assert_eq!(store.get_revision(o, &app.id, "1").await.unwrap(), one.revision);
}

async fn token_lifecycle(store: Store) {
    let a = org(&store, "acme").await;
    let o = &a.org.id;
    let ci = store
        .create_principal(
            o,
            NewPrincipal {
                kind: PrincipalKind::Service,
                name: "ci-bot".into(),
                display_name: None,
                max_scope: Scope::Push,
            },
            &ctx(o),
        )
        .await
        .unwrap();
    let too_much = store.create_token(o, &ci.id, &a.admin.id, "x", Scope::Write, None, &ctx(o)).await;
    assert!(matches!(too_much, Err(StoreError::Invalid(ref m)) if m.contains("at most `push`")));
    let tok = store.create_token(o, &ci.id, &a.admin.id, "deploys", Scope::Push, None, &ctx(o)).await.unwrap();
    let who = store.authenticate(&tok.secret).await.unwrap().unwrap();
    assert_eq!((who.kind, who.scope), (PrincipalKind::Service, Scope::Push));
    let listed = store.list_tokens(o, Some(&ci.id), &Page::all()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some(), "use is recorded");
    let revoked = store.revoke_token(o, &tok.token.id, &ctx(o)).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(store.authenticate(&tok.secret).await.unwrap(), Err(TokenRejection::Revoked));
    assert_eq!(store.revoke_token(o, &tok.token.id, &ctx(o)).await.unwrap().revoked_at, revoked.revoked_at);

    let short = store
        .create_token(o, &ci.id, &a.admin.id, "short", Scope::Read, Some(Duration::from_millis(1)), &ctx(o))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.authenticate(&short.secret).await.unwrap(), Err(TokenRejection::Expired));
    assert_eq!(store.authenticate("gat_0000").await.unwrap(), Err(TokenRejection::Unknown));
    assert_eq!(store.authenticate("not-a-token").await.unwrap(), Err(TokenRejection::Unknown));
    assert!(matches!(store.revoke_token(o, &TokenId::generate(), &ctx(o)).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(
        store
            .create_principal(
                o,
                NewPrincipal {
                    kind: PrincipalKind::User,
                    name: "Not An Email".into(),
                    display_name: None,
                    max_scope: Scope::Read
                },
                &ctx(o),
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .create_principal(
                o,
                NewPrincipal {
                    kind: PrincipalKind::Service,
                    name: "ci-bot".into(),
                    display_name: None,
                    max_scope: Scope::Read
                },
                &ctx(o),
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
}

async fn deactivation_revokes_tokens(store: Store) {
    let a = org(&store, "acme").await;
    let o = &a.org.id;
    let user = store
        .create_principal(
            o,
            NewPrincipal {
                kind: PrincipalKind::User,
                name: "ana@acme.example".into(),
                display_name: Some("Ana".into()),
                max_scope: Scope::Write,
            },
            &ctx(o),
        )
        .await
        .unwrap();
    let t1 = store.create_token(o, &user.id, &user.id, "laptop", Scope::Write, None, &ctx(o)).await.unwrap();
    let t2 = store.create_token(o, &user.id, &user.id, "ci", Scope::Read, None, &ctx(o)).await.unwrap();
    assert!(store.authenticate(&t1.secret).await.unwrap().is_ok());
    let off = store.set_principal_active(o, &user.id, false, &ctx(o)).await.unwrap();
    assert!(!off.active);
    for t in [&t1, &t2] {
        assert_eq!(store.authenticate(&t.secret).await.unwrap(), Err(TokenRejection::Revoked));
    }
    // Reactivation does not resurrect revoked tokens.
    store.set_principal_active(o, &user.id, true, &ctx(o)).await.unwrap();
    assert_eq!(store.authenticate(&t1.secret).await.unwrap(), Err(TokenRejection::Revoked));
    assert!(store.create_token(o, &user.id, &user.id, "new", Scope::Write, None, &ctx(o)).await.is_ok());
}

async fn store_is_ready(store: Store) {
    store.ready().await.unwrap();
}

async fn concurrent_moves_cannot_form_a_cycle(store: Store) {
    let a = org(&store, "acme").await;
    let o = a.org.id.clone();
    for round in 0..10 {
        let x = store.create_folder(&o, None, &format!("x{round}"), &ctx(&o)).await.unwrap();
        let y = store.create_folder(&o, None, &format!("y{round}"), &ctx(&o)).await.unwrap();
        let (s1, s2) = (store.clone(), store.clone());
        let (o1, o2) = (o.clone(), o.clone());
        let (x1, y1, x2, y2) = (x.id.clone(), y.id.clone(), x.id.clone(), y.id.clone());
        let one = tokio::spawn(async move { s1.update_folder(&o1, &x1, None, Some(&y1), &ctx(&o1)).await });
        let two = tokio::spawn(async move { s2.update_folder(&o2, &y2, None, Some(&x2), &ctx(&o2)).await });
        let (r1, r2) = (one.await.unwrap(), two.await.unwrap());
        assert!(r1.is_ok() != r2.is_ok(), "exactly one of two crossing moves succeeds: {r1:?} {r2:?}");
        // Every folder still has a path up to the root.
        for f in store.list_folders(&o).await.unwrap() {
            assert!(f.path.starts_with('/'));
        }
    }
}

async fn concurrent_pushes_number_revisions_densely(store: Store) {
    let a = org(&store, "acme").await;
    let app = app(&store, &a, "busy").await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (s, o, id, author) = (store.clone(), a.org.id.clone(), app.id.clone(), a.admin.id.clone());
        tasks.push(tokio::spawn(async move {
            s.push_revision(&o, &id, revision(&author, &format!("content-{i}")), &ctx(&o)).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap().created);
    }
    let mut numbers: Vec<i64> =
        store.list_revisions(&a.org.id, &app.id, 100, None).await.unwrap().iter().map(|r| r.number).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=16).collect::<Vec<i64>>());
}

fn verify_all(records: &[gatehouse_core::audit::AuditRecord]) {
    let key = gatehouse_audit::CheckpointSigner::from_seed(&[7; 32]).verifying_key();
    gatehouse_audit::verify(records, &[], &key, &gatehouse_audit::GENESIS).unwrap();
}

async fn changes_are_recorded_in_a_verifiable_chain(store: Store) {
    let a = org(&store, "acme").await;
    let o = a.org.id.clone();
    let f = store.create_folder(&o, None, "finance", &ctx(&o)).await.unwrap();
    let app = app(&store, &a, "ledger").await;
    store.push_revision(&o, &app.id, revision(&a.admin.id, "v1"), &ctx(&o)).await.unwrap();
    store
        .update_app(&o, &app.id, AppPatch { folder_id: Some(f.id.clone()), ..Default::default() }, &ctx(&o))
        .await
        .unwrap();
    // A refused change leaves no record.
    assert!(store.create_folder(&o, None, "finance", &ctx(&o)).await.is_err());
    let records = store.audit_range(&o, 1, u64::MAX, 100).await.unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.draft.action.as_str()).collect();
    assert_eq!(actions, ["org.create", "folder.create", "app.create", "app.revision.push", "app.update"]);
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(records[1].draft.resource.path.as_deref(), Some("/finance"));
    assert_eq!(records[4].draft.resource.path.as_deref(), Some("/finance/ledger"));
    assert_eq!(records[4].draft.details["changes"]["folder_id"]["to"], serde_json::json!(f.id));
    verify_all(&records);
    let head = store.audit_head(&o).await.unwrap();
    assert_eq!((head.seq, head.hash.as_str()), (5, records[4].hash.as_str()));
}

async fn concurrent_writers_keep_the_chain_contiguous(store: Store) {
    let a = org(&store, "acme").await;
    let o = a.org.id.clone();
    let app = app(&store, &a, "busy").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (s, o, id, author) = (store.clone(), o.clone(), app.id.clone(), a.admin.id.clone());
        tasks.push(tokio::spawn(async move {
            for j in 0..10 {
                let e = ctx(&o).event(
                    "app.test",
                    gatehouse_store::resource("app", id.as_str()),
                    serde_json::json!({"i": i, "j": j}),
                );
                s.append_audit(vec![e.clone(), e]).await.unwrap();
            }
            s.push_revision(&o, &id, revision(&author, &format!("c{i}")), &ctx(&o)).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let records = store.audit_range(&o, 1, u64::MAX, 1000).await.unwrap();
    // org.create + app.create + 8 × (20 events + 1 push)
    assert_eq!(records.len(), 2 + 8 * 21);
    assert!(records.iter().enumerate().all(|(i, r)| r.seq == i as u64 + 1));
    verify_all(&records);
}

async fn a_change_whose_record_fails_is_not_made(store: Store) {
    let a = org(&store, "acme").await;
    let o = a.org.id.clone();
    // The audit table refuses writes (a full disk, a read-only tablespace): changes must fail
    // and leave nothing behind, while reads go on.
    let (install, remove) = match store.engine() {
        gatehouse_store::Engine::Sqlite => (
            "CREATE TRIGGER audit_full BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
            "DROP TRIGGER audit_full;",
        ),
        gatehouse_store::Engine::Postgres => (
            "CREATE FUNCTION audit_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$; \
             CREATE TRIGGER audit_full BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_full();",
            "DROP TRIGGER audit_full ON audit_events; DROP FUNCTION audit_full();",
        ),
    };
    store.raw_sql_for_test(install).await.unwrap();
    let root = store.root_folder(&o).await.unwrap();
    let new = NewApp {
        name: "ghost".into(),
        folder_id: root.id.clone(),
        owner_id: a.admin.id.clone(),
        sensitivity: Sensitivity::Normal,
        description: None,
    };
    let err = store.create_app(&o, new.clone(), &ctx(&o)).await.unwrap_err();
    assert!(matches!(err, StoreError::AuditUnavailable(_)), "{err:?}");
    assert!(err.is_unavailable());
    assert!(!err.to_string().contains("disk full") || err.to_string().len() < 200);
    assert!(matches!(store.app_by_name(&o, "ghost").await, Err(StoreError::NotFound { .. })));
    assert!(store.create_folder(&o, None, "ghost", &ctx(&o)).await.is_err());
    assert!(store.folder_by_path(&o, "/ghost").await.is_err());
    let t = store.create_token(&o, &a.admin.id, &a.admin.id, "t", Scope::Read, None, &ctx(&o)).await;
    assert!(matches!(t, Err(StoreError::AuditUnavailable(_))));
    assert_eq!(store.list_tokens(&o, None, &Page::all()).await.unwrap().len(), 1);
    assert_eq!(store.audit_head(&o).await.unwrap().seq, 1);
    store.raw_sql_for_test(remove).await.unwrap();
    store.create_app(&o, new, &ctx(&o)).await.unwrap();
    assert_eq!(store.audit_head(&o).await.unwrap().seq, 2);
    verify_all(&store.audit_range(&o, 1, 10, 10).await.unwrap());
}

async fn audit_records_cannot_be_edited_or_deleted(store: Store) {
    let a = org(&store, "acme").await;
    let o = a.org.id.as_str();
    let update = format!("UPDATE audit_events SET action = 'nothing' WHERE org_id = '{o}'");
    assert!(store.raw_sql_for_test(&update).await.is_err());
    let delete = format!("DELETE FROM audit_events WHERE org_id = '{o}'");
    assert!(store.raw_sql_for_test(&delete).await.is_err());
    assert_eq!(store.audit_range(&a.org.id, 1, 10, 10).await.unwrap().len(), 1);
}

/// A real full disk, as SQLite meets it (the file may not grow by another page): the change is
/// refused as "unavailable", nothing of it or its record is stored, reads go on.
#[tokio::test]
async fn sqlite_disk_full_refuses_changes_and_loses_nothing() {
    let (store, _dir) = gatehouse_store::testing::sqlite().await;
    let a = org(&store, "acme").await;
    let o = a.org.id.clone();
    let app = app(&store, &a, "big").await;
    let head = store.audit_head(&o).await.unwrap();
    // The maximum cannot go below the current size: this pins the file at its size now.
    store.raw_sql_for_test("PRAGMA max_page_count = 1").await.unwrap();
    let mut big = revision(&a.admin.id, "big-content");
    big.archive = vec![7u8; 512 * 1024];
    let err = store.push_revision(&o, &app.id, big.clone(), &ctx(&o)).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(err.to_string().contains("disk is full"), "{err}");
    assert!(store.list_revisions(&o, &app.id, 10, None).await.unwrap().is_empty());
    assert_eq!(store.audit_head(&o).await.unwrap(), head);
    store.raw_sql_for_test("PRAGMA max_page_count = 1073741823").await.unwrap();
    store.push_revision(&o, &app.id, big, &ctx(&o)).await.unwrap();
    assert_eq!(store.audit_head(&o).await.unwrap().seq, head.seq + 1);
}

/// A PostgreSQL server that turned read-only (a replica promoted the wrong way, a full disk
/// handled by the operator): changes are refused as "unavailable", nothing is half-made, reads go on.
#[tokio::test]
async fn postgres_read_only_refuses_changes_and_reads_go_on() {
    let schema = gatehouse_store::testing::fresh_schema().await;
    let opts = |s: &str| {
        use std::str::FromStr;
        sqlx::postgres::PgConnectOptions::from_str(&gatehouse_store::testing::postgres_url())
            .unwrap()
            .options([("search_path", s)])
    };
    let rw = Store::open_postgres_with(opts(&schema), 2).await.unwrap();
    let a = org(&rw, "acme").await;
    let o = a.org.id.clone();
    // One connection, switched to read-only for the rest of its session.
    let ro = Store::open_postgres_with(opts(&schema), 1).await.unwrap();
    ro.raw_sql_for_test("SET default_transaction_read_only = on").await.unwrap();
    let err = ro.create_folder(&o, None, "finance", &ctx(&o)).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(err.to_string().contains("read-only"), "{err}");
    let err = ro
        .append_audit(vec![ctx(&o).event("app.test", gatehouse_store::resource("app", "x"), serde_json::json!({}))])
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(ro.list_folders(&o).await.unwrap().len(), 1, "reads go on; nothing was made");
    assert_eq!(ro.audit_head(&o).await.unwrap().seq, 1);
}
