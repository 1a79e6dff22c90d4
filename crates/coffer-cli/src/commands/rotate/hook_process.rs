//! Running one hook command: `sh -c COMMAND` in a process group of its own, stdin
//! closed, stdout and stderr captured up to a bound, killed with its whole group when
//! its timeout passes.
//!
//! Blocking (threads and `std::process`): the caller runs it on tokio's blocking pool.
//! The group matters because a hook is usually a script: killing only `sh` would leave
//! the command it started running, holding the pipes open.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much of each stream is kept; the rest is read and dropped.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// How often a running hook is checked for its exit and its deadline.
const POLL: Duration = Duration::from_millis(20);

/// How long, once the hook exited, its output may still take to reach end of file. A
/// process the hook left in the background (outside its group) can hold the pipes
/// open for ever; what was read by then is kept.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// What to run.
pub struct Spec {
    /// The command line, given to `sh -c`.
    pub command: String,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Variables removed from it (the token's).
    pub remove: Vec<String>,
    /// Killed, with its process group, when this passes.
    pub timeout: Duration,
}

/// One stream's output.
#[derive(Debug, Default)]
pub struct Captured {
    /// The first [`OUTPUT_LIMIT`] bytes, as UTF-8 (invalid sequences replaced).
    pub text: String,
    /// True when there was more.
    pub truncated: bool,
}

/// How a hook ended.
#[derive(Debug)]
pub struct Ran {
    /// The exit status.
    pub status: ExitStatus,
    /// True when it was killed at its timeout.
    pub timed_out: bool,
    /// From start to exit.
    pub duration: Duration,
    /// Its standard output.
    pub stdout: Captured,
    /// Its standard error.
    pub stderr: Captured,
}

impl Ran {
    /// Exited by itself with status 0.
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.success()
    }

    /// The exit code, `None` when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that ended it, if one did.
    pub fn signal(&self) -> Option<i32> {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            self.status.signal()
        }
        #[cfg(not(unix))]
        None
    }
}

/// Runs `spec` to its end or its timeout.
pub fn run(spec: &Spec) -> std::io::Result<Ran> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(&spec.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in &spec.remove {
        command.env_remove(name);
    }
    command.envs(spec.env.iter().map(|(k, v)| (k, v)));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let started = Instant::now();
    let mut child = command.spawn()?;
    let stdout = Stream::read(child.stdout.take());
    let stderr = Stream::read(child.stderr.take());
    let deadline = started + spec.timeout;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait()? {
            break (status, false);
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            break (child.wait()?, true);
        }
        std::thread::sleep(POLL);
    };
    let duration = started.elapsed();
    let grace = Instant::now() + DRAIN_GRACE;
    Ok(Ran {
        status,
        timed_out,
        duration,
        stdout: stdout.finish(grace),
        stderr: stderr.finish(grace),
    })
}

/// SIGKILL to the hook's whole process group (it leads it: `process_group(0)`).
fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    {
        let group = rustix::process::Pid::from_child(child);
        if rustix::process::kill_process_group(group, rustix::process::Signal::KILL).is_ok() {
            return;
        }
    }
    // The group is gone already, or not Unix: the child alone.
    let _ = child.kill();
}

/// A stream read to its end on a thread of its own, so a hook that fills one pipe
/// while we wait on the other cannot stall.
struct Stream {
    kept: Arc<Mutex<Captured>>,
    done: mpsc::Receiver<()>,
}

impl Stream {
    fn read(pipe: Option<impl Read + Send + 'static>) -> Self {
        let kept = Arc::new(Mutex::new(Captured::default()));
        let (tell, done) = mpsc::channel();
        if let Some(mut pipe) = pipe {
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    let room = OUTPUT_LIMIT.saturating_sub(bytes.len());
                    let mut captured = kept.lock().unwrap_or_else(|e| e.into_inner());
                    if n > room {
                        captured.truncated = true;
                    }
                    if room > 0 {
                        bytes.extend_from_slice(&chunk[..n.min(room)]);
                        // Kept current, so a pipe held open past the grace loses nothing.
                        captured.text = String::from_utf8_lossy(&bytes).into_owned();
                    }
                }
                let _ = tell.send(());
            });
        }
        Self { kept, done }
    }

    /// What was read by end of file, or by `deadline` if the pipe stays open.
    fn finish(self, deadline: Instant) -> Captured {
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &str, timeout: Duration) -> Spec {
        Spec {
            command: command.into(),
            env: vec![("HOOK_GREETING".into(), "hello".into())],
            remove: vec!["HOME".into()],
            timeout,
        }
    }

    #[test]
    fn output_status_and_environment_are_captured() {
        let ran = run(&spec(
            "echo \"$HOOK_GREETING ${HOME:-no-home}\"; echo oops >&2; exit 3",
            Duration::from_secs(10),
        ))
        .unwrap();
        assert!(!ran.success());
        assert_eq!(ran.code(), Some(3));
        assert!(!ran.timed_out);
        assert_eq!(ran.stdout.text, "hello no-home\n");
        assert_eq!(ran.stderr.text, "oops\n");
    }

    #[test]
    fn output_is_bounded() {
        let ran = run(&spec(
            "head -c 200000 /dev/zero | tr '\\0' x",
            Duration::from_secs(10),
        ))
        .unwrap();
        assert!(ran.success());
        assert_eq!(ran.stdout.text.len(), OUTPUT_LIMIT);
        assert!(ran.stdout.truncated);
    }

    #[test]
    fn a_hung_hook_and_its_children_are_killed_at_the_timeout() {
        let started = Instant::now();
        // The shell starts a child that would print long after the timeout.
        let ran = run(&spec(
            "echo started; (sleep 30; echo late) & sleep 30",
            Duration::from_secs(1),
        ))
        .unwrap();
        assert!(ran.timed_out);
        assert!(!ran.success());
        assert_eq!(ran.signal(), Some(9));
        assert_eq!(ran.stdout.text, "started\n");
        // Had the background child survived, it would hold stdout open: the drain
        // would wait out its grace, and the run would take longer.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1) + DRAIN_GRACE / 2, "{took:?}");
    }
}
