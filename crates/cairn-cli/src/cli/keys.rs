//! `cairn key list | add | remove ID | passwd`: the key files of an
//! encrypted repository, worked on through its storage (no catalog needed).

use anyhow::Result;

use super::args::{KeyCommand, NewPasswordArgs};
use super::{output, password, Ctx};

pub fn key(ctx: &Ctx, command: KeyCommand) -> Result<()> {
    let (path, _) = ctx.repo_path()?;
    if let KeyCommand::Add(NewPasswordArgs {
        new_password_file, ..
    })
    | KeyCommand::Passwd(NewPasswordArgs {
        new_password_file, ..
    }) = &command
    {
        password::install(password::Sources {
            new_file: new_password_file.clone(),
            ..ctx.passwords.clone()
        });
    }
    let repo = cairn::Repository::open_storage_location(&path)?;
    for w in repo.warnings() {
        eprintln!("cairn: {w}");
    }
    match command {
        KeyCommand::List(a) => {
            let keys = repo.keys()?;
            if a.json {
                let keys: Vec<super::json::Key> = keys.iter().map(super::json::Key::new).collect();
                return output::json(&keys);
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    let created = chrono::DateTime::from_timestamp_nanos(k.created_ns);
                    vec![
                        format!("{}{}", if k.current { "*" } else { " " }, k.id),
                        output::local_time(&created),
                        k.host.clone(),
                        format!(
                            "argon2id {} MiB x{}",
                            k.kdf.memory_kib / 1024,
                            k.kdf.iterations
                        ),
                    ]
                })
                .collect();
            output::table(&[" ID", "CREATED", "HOST", "KDF"], &rows)?;
        }
        KeyCommand::Add(a) => {
            let id = repo.add_key()?;
            if a.json {
                return output::json(&serde_json::json!({ "added": id }));
            }
            outln!("added key {id}");
        }
        KeyCommand::Remove(a) => {
            repo.remove_key(&a.id)?;
            if a.json {
                return output::json(&serde_json::json!({ "removed": a.id }));
            }
            outln!("removed key {}", a.id);
        }
        KeyCommand::Passwd(a) => {
            let old = repo.crypt().unlocked_with().unwrap_or_default().to_string();
            let id = repo.change_password()?;
            if a.json {
                return output::json(&serde_json::json!({ "removed": old, "added": id }));
            }
            outln!("changed the password: key {old} replaced by {id}");
        }
    }
    Ok(())
}
