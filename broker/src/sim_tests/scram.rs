//! SCRAM credentials through the API on the simulated broker: AlterUserScramCredentials
//! stores what the client salted (StoredKey and ServerKey derived from it, as a SCRAM login
//! then checks), DescribeUserScramCredentials reports mechanisms and iterations, Kafka's
//! refusals fail one user without touching another, and the credentials survive a crash.

use super::*;
use crate::errors::code;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use millrace_security::sasl::{salted_password, Mechanism, ScramCredential};

fn upsert(
    user: &str,
    mech: Mechanism,
    iterations: i32,
    password: &str,
) -> ScramCredentialUpsertion {
    let salt = format!("salt-of-{user}").into_bytes();
    let salted = salted_password(mech, password, &salt, 4096).expect("salts");
    ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(user.into()))
        .with_mechanism(mech.scram_type().expect("a SCRAM mechanism"))
        .with_iterations(iterations)
        .with_salt(salt.into())
        .with_salted_password(salted.into())
}

async fn alter(
    shard: &Rc<Shard>,
    upsertions: Vec<ScramCredentialUpsertion>,
    deletions: Vec<ScramCredentialDeletion>,
) -> Vec<(String, i16)> {
    let req = AlterUserScramCredentialsRequest::default()
        .with_upsertions(upsertions)
        .with_deletions(deletions);
    let resp: AlterUserScramCredentialsResponse =
        call(shard, ApiKey::AlterUserScramCredentials, 0, &req).await;
    resp.results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect()
}

async fn describe(shard: &Rc<Shard>, users: Option<&[&str]>) -> Vec<(String, i16, Vec<(i8, i32)>)> {
    let names = users.map(|u| {
        u.iter()
            .map(|n| UserName::default().with_name(StrBytes::from_string(n.to_string())))
            .collect()
    });
    let req = DescribeUserScramCredentialsRequest::default().with_users(names);
    let resp: DescribeUserScramCredentialsResponse =
        call(shard, ApiKey::DescribeUserScramCredentials, 0, &req).await;
    resp.results
        .iter()
        .map(|r| {
            let infos = r
                .credential_infos
                .iter()
                .map(|i| (i.mechanism, i.iterations))
                .collect();
            (r.user.to_string(), r.error_code, infos)
        })
        .collect()
}

#[test]
fn scram_credentials_are_stored_checked_and_survive_a_crash() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(31);
    let shards = sim.block_on(boot(&disk));
    sim.block_on(async {
        let done = alter(
            &shards[1],
            vec![
                upsert("alice", Mechanism::ScramSha256, 8192, "pw-256"),
                upsert("alice", Mechanism::ScramSha512, 4096, "pw-512"),
                upsert("bob", Mechanism::ScramSha256, 1000, "too few"),
                upsert("carol", Mechanism::ScramSha256, 4096, "x"),
                upsert("carol", Mechanism::ScramSha256, 4096, "twice"),
            ],
            vec![ScramCredentialDeletion::default()
                .with_name(StrBytes::from_static_str("dave"))
                .with_mechanism(1)],
        )
        .await;
        assert_eq!(
            done,
            vec![
                ("dave".to_string(), code::RESOURCE_NOT_FOUND),
                ("alice".to_string(), code::NONE),
                ("bob".to_string(), code::UNACCEPTABLE_CREDENTIAL),
                ("carol".to_string(), code::DUPLICATE_RESOURCE),
            ]
        );
        // What a SCRAM login checks: the keys derived from the client's salted password.
        let salt = b"salt-of-alice".to_vec();
        let salted = salted_password(Mechanism::ScramSha512, "pw-512", &salt, 4096).unwrap();
        let want =
            ScramCredential::from_salted_password(Mechanism::ScramSha512, &salt, &salted, 4096)
                .unwrap();
        let image = shards[0].image();
        let stored = image.cluster.scram_credential("alice", 2).expect("stored");
        assert_eq!(
            (&stored.stored_key, &stored.server_key, &stored.salt),
            (&want.stored_key, &want.server_key, &want.salt)
        );
        assert_eq!(
            describe(&shards[0], None).await,
            vec![("alice".to_string(), 0, vec![(1, 8192), (2, 4096)])]
        );
        let named = describe(&shards[0], Some(&["bob", "alice", "alice"])).await;
        let codes: Vec<i16> = named.iter().map(|r| r.1).collect();
        assert_eq!(
            codes,
            vec![
                code::RESOURCE_NOT_FOUND,
                code::DUPLICATE_RESOURCE,
                code::DUPLICATE_RESOURCE
            ]
        );
    });
    drop(shards);
    sim.crash();
    disk.crash(31);

    let sim = Sim::new(32);
    let shards = sim.block_on(boot(&disk));
    sim.block_on(async {
        assert_eq!(
            describe(&shards[1], Some(&["alice"])).await,
            vec![("alice".to_string(), 0, vec![(1, 8192), (2, 4096)])]
        );
        let deletion = ScramCredentialDeletion::default()
            .with_name(StrBytes::from_static_str("alice"))
            .with_mechanism(1);
        assert_eq!(
            alter(&shards[0], vec![], vec![deletion]).await,
            vec![("alice".to_string(), code::NONE)]
        );
        assert_eq!(
            describe(&shards[0], None).await,
            vec![("alice".to_string(), 0, vec![(2, 4096)])]
        );
    });
}
