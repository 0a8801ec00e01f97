//! Where log lines really go on this machine, for `check`: what `sys::log` tries in turn
//! (syslog, the `[log] file`, stderr) against what answers here, and, for stderr, where the
//! running web server puts a CGI's stderr. "The web server's error log" was once the
//! answer while fcgiwrap, started without `-f`, sent it to /dev/null.

use std::path::Path;

use super::{web, writable, Ctx, Report};

/// Where log lines really go: syslog when its socket answers; else the `[log] file`; else
/// only warnings and errors, to stderr, which is where the web server put it for a delivery
/// (nginx's error log only when fcgiwrap runs with `-f`) and `worker.log` for an async
/// build. Rejected deliveries (401, 403, 404) are warnings, so they are never dropped while
/// a line can go anywhere; when even stderr is lost, that is a FAIL.
pub(super) fn check(ctx: &Ctx, web: &web::Observed, r: &mut Report) {
    let cfg = ctx.cfg;
    let user = &ctx.user;
    let ident = &cfg.log.ident;
    let syslog = cfg.log.syslog.as_ref();
    if let Some(sock) = syslog {
        if std::os::unix::net::UnixDatagram::unbound()
            .and_then(|s| s.connect(sock))
            .is_ok()
        {
            r.ok(
                "log",
                format!(
                    "log lines go to syslog ({}): every delivery (rejected ones, 401/403/404, as warnings) and every build; read them with journalctl -t {ident} or in /var/log/syslog",
                    sock.display()
                ),
            );
            return;
        }
    }
    let why_not_syslog = match syslog {
        Some(sock) => format!("the syslog socket {} cannot be reached", sock.display()),
        None => "syslog is off (syslog = \"\")".to_string(),
    };
    if let Some(file) = &cfg.log.file {
        let target = if file.exists() {
            file.clone()
        } else {
            file.parent().unwrap_or(Path::new("/")).to_path_buf()
        };
        if writable(&target) {
            r.ok(
                "log",
                format!(
                    "log lines go to {} ({why_not_syslog}): every delivery (rejected ones, 401/403/404, as warnings) and every build",
                    file.display()
                ),
            );
            return;
        }
        let dir = file.parent().unwrap_or(Path::new("/"));
        r.fail(
            "log",
            format!(
                "{why_not_syslog}, and the log file {} cannot be written by {user}: log lines go to stderr instead",
                file.display()
            ),
            format!(
                "install -d -o {user} -g adm -m 0750 {} (and chown {user} the file if it exists)",
                dir.display()
            ),
        );
        return;
    }
    let workers = format!("{}/<hook>/worker.log", cfg.state_dir.display());
    let goes = web.delivery_stderr();
    let places = if goes.is_empty() && !web.unreadable().is_empty() {
        format!(
            "the web server's error log (check could not read {}'s config to say which: run it as root)",
            web.unreadable().join(" and ")
        )
    } else if goes.is_empty() {
        "the web server's error log (check found no web server that runs deploy-hook to say which)".to_string()
    } else {
        goes.iter().map(|g| g.describe()).collect::<Vec<_>>().join("; ")
    };
    let said = format!(
        "{why_not_syslog} and no [log] file is set: only warnings and errors are logged, to stderr: a delivery's (rejected deliveries, 401/403/404, and errors) to {places}; an async build's to {workers}; accepted deliveries and builds that succeed are not logged"
    );
    let fix = format!(
        "set file = \"/var/log/deploy-hook/deploy-hook.log\" in [log] (install -d -o {user} -g adm -m 0750 /var/log/deploy-hook), or make {} reachable",
        syslog.map(|p| p.display().to_string()).unwrap_or_else(|| "syslog".into())
    );
    if goes.iter().any(web::DeliveryStderr::lost) {
        r.fail(
            "log",
            format!("{said}: the deliveries' lines are lost"),
            format!("{fix}; or start fcgiwrap with -f"),
        );
    } else {
        r.warn("log", format!("{said} ({fix})"));
    }
}
