//! The messages of a mailbox as servers deliver them: a Maildir (the files
//! of `new/` and `cur/`), an mbox (messages after `From ` lines, as
//! Postfix's local(8) and Dovecot write them, `>From ` unquoted), or one
//! message in a file of its own. An mbox is read one message at a time.

use std::io::BufRead as _;
use std::path::Path;

use crate::error::{Error, Result};

/// Calls `each(location, bytes)` for every message of the mailbox at
/// `path`, in order (a Maildir's files by name). The location names the
/// file, and in an mbox the line its message starts at.
pub fn each_message(
    path: &Path,
    each: &mut dyn FnMut(String, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let metadata = std::fs::metadata(path).map_err(|source| Error::io(path, source))?;
    if metadata.is_dir() {
        return maildir(path, each);
    }
    let file = std::fs::File::open(path).map_err(|source| Error::io(path, source))?;
    let mut reader = std::io::BufReader::new(file);
    let starts_as_mbox = reader
        .fill_buf()
        .map_err(|source| Error::io(path, source))?
        .starts_with(b"From ");
    if starts_as_mbox {
        mbox(path, reader, each)
    } else {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut bytes)
            .map_err(|source| Error::io(path, source))?;
        each(path.display().to_string(), bytes)
    }
}

fn maildir(path: &Path, each: &mut dyn FnMut(String, Vec<u8>) -> Result<()>) -> Result<()> {
    let folders: Vec<_> = ["new", "cur"]
        .iter()
        .map(|name| path.join(name))
        .filter(|folder| folder.is_dir())
        .collect();
    if folders.is_empty() {
        return Err(Error::Input {
            path: path.to_path_buf(),
            message: "a directory but not a Maildir (it has no new/ or cur/)".into(),
        });
    }
    for folder in folders {
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .map_err(|source| Error::io(&folder, source))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<std::io::Result<_>>()
            .map_err(|source| Error::io(&folder, source))?;
        // Dot files are a client's own; tmp/ is not delivered yet.
        files.retain(|file| {
            file.is_file()
                && !file
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        });
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).map_err(|source| Error::io(&file, source))?;
            each(file.display().to_string(), bytes)?;
        }
    }
    Ok(())
}

/// An mbox: a message starts at a `From ` line at the start of the file
/// or after a blank line; that blank line is the separator, not the
/// message's. Quoted lines (`>From `, `>>From `, …) lose one `>`
/// (mboxrd; for mboxo this also unquotes a line that had one `>` of its
/// own, which changes nothing a report is read for).
fn mbox(
    path: &Path,
    mut reader: impl std::io::BufRead,
    each: &mut dyn FnMut(String, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let mut message: Option<(usize, Vec<u8>)> = None;
    let mut line = Vec::new();
    let mut number = 0;
    let mut after_blank = true;
    let finish = |message: Option<(usize, Vec<u8>)>,
                  each: &mut dyn FnMut(String, Vec<u8>) -> Result<()>|
     -> Result<()> {
        let Some((start, mut bytes)) = message else {
            return Ok(());
        };
        // The separator's blank line.
        if bytes.ends_with(b"\r\n\r\n") {
            bytes.truncate(bytes.len() - 2);
        } else if bytes.ends_with(b"\n\n") {
            bytes.truncate(bytes.len() - 1);
        }
        each(format!("{}:{start}", path.display()), bytes)
    };
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| Error::io(path, source))?;
        if read == 0 {
            break;
        }
        number += 1;
        if after_blank && line.starts_with(b"From ") {
            finish(message.take(), each)?;
            message = Some((number, Vec::new()));
            after_blank = false;
            continue;
        }
        after_blank = line == b"\n" || line == b"\r\n";
        if let Some((_, bytes)) = message.as_mut() {
            let quoted = line.iter().take_while(|&&b| b == b'>').count();
            if quoted > 0 && line[quoted..].starts_with(b"From ") {
                bytes.extend_from_slice(&line[1..]);
            } else {
                bytes.extend_from_slice(&line);
            }
        }
    }
    finish(message, each)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(path: &Path) -> Vec<(String, String)> {
        let mut found = Vec::new();
        each_message(path, &mut |location, bytes| {
            found.push((location, String::from_utf8(bytes).unwrap()));
            Ok(())
        })
        .unwrap();
        found
    }

    #[test]
    fn an_mbox_is_split_at_from_lines_after_blank_lines_and_unquoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bounces.mbox");
        std::fs::write(
            &path,
            "From MAILER-DAEMON Sat Nov 21 12:00:00 2026\n\
             Subject: one\n\nbody\n>From the start\nFrom inside a paragraph\n\n\
             From MAILER-DAEMON Sat Nov 21 12:01:00 2026\n\
             Subject: two\n\n>>From quoted twice\n\n",
        )
        .unwrap();
        let found = messages(&path);
        let path = path.display();
        assert_eq!(
            found,
            [
                (
                    format!("{path}:1"),
                    "Subject: one\n\nbody\nFrom the start\nFrom inside a paragraph\n".into()
                ),
                (
                    format!("{path}:8"),
                    "Subject: two\n\n>From quoted twice\n".into()
                ),
            ]
        );
    }

    #[test]
    fn a_maildir_is_read_from_new_and_cur_and_a_plain_file_is_one_message() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        for (file, text) in [
            ("new/2.host", "b"),
            ("new/1.host", "a"),
            ("cur/3.host:2,S", "c"),
            ("cur/.hidden", "x"),
            ("tmp/4.host", "x"),
        ] {
            let path = maildir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let bodies: Vec<String> = messages(&maildir).into_iter().map(|(_, b)| b).collect();
        assert_eq!(bodies, ["a", "b", "c"]);
        let one = dir.path().join("one.eml");
        std::fs::write(&one, "Subject: x\n\ny").unwrap();
        assert_eq!(messages(&one).len(), 1);
        let error = each_message(dir.path(), &mut |_, _| Ok(())).unwrap_err();
        assert!(error.to_string().contains("not a Maildir"), "{error}");
        let error = each_message(&dir.path().join("none"), &mut |_, _| Ok(())).unwrap_err();
        assert!(matches!(error, Error::Io { .. }), "{error}");
    }
}
