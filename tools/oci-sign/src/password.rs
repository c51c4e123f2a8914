//! Where the private key's password comes from, as cosign looks for it:
//! `COSIGN_PASSWORD` (even empty), else a prompt on the terminal (asked twice
//! when creating a key), else one line of stdin when stdin is not a terminal
//! and carries no images.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The password, from the environment, the terminal (asked twice with
/// `confirm`, for a new key) or stdin (only when `stdin_is_free`).
pub fn read(confirm: bool, stdin_is_free: bool) -> Result<Vec<u8>> {
    if let Some(password) = std::env::var_os("COSIGN_PASSWORD") {
        return Ok(password.into_encoded_bytes());
    }
    if std::io::stdin().is_terminal() {
        let first = prompt("Enter password for private key: ")?;
        if confirm {
            let again = prompt("Enter password for private key again: ")?;
            if first != again {
                bail!("passwords do not match");
            }
        }
        return Ok(first);
    }
    if !stdin_is_free {
        bail!("no password: set COSIGN_PASSWORD (stdin carries the images, and there is no terminal to ask on)");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec())
}

/// Asks on the controlling terminal with echo off (through `stty`, so no
/// unsafe terminal calls here).
fn prompt(text: &str) -> Result<Vec<u8>> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("opening /dev/tty to ask for the password (or set COSIGN_PASSWORD)")?;
    let stty = |arg: &str| {
        Command::new("stty")
            .arg(arg)
            .stdin(
                tty.try_clone()
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .status()
    };
    (&tty).write_all(text.as_bytes())?;
    let echo_off = stty("-echo").is_ok_and(|s| s.success());
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if echo_off {
        let _ = stty("echo");
    }
    (&tty).write_all(b"\n")?;
    read.context("reading the password from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec())
}
