//! What a red-team pass found, each pinned: text that www-data or a bucket controls never
//! reaches a terminal raw, a hook that stays root reads and runs only what root alone
//! controls, a damaged bucket manifest is never trusted, and a Gitee signing secret shared
//! between hooks is pointed out.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::check::text;
use crate::util::*;

/// Terminal control sequences: ESC (CSI, OSC), BEL, and the 8-bit CSI.
fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n')
}

#[test]
fn check_escapes_a_remote_url_a_build_step_set() {
    let w = World::new("check-escape");
    w.config("gitlab", "steps = [\"true\"]");
    // A build step (www-data) can set remote.origin.url to anything: a title change (OSC),
    // a screen clear (CSI) and a bell.
    let url = "/srv/x\u{1b}]0;PWNED\u{7}\u{1b}[2J.git";
    git(&w.repo, &["remote", "set-url", "origin", url]);
    let out = w.cmd(&["check"]);
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(t.contains("remote origin is"), "{t}");
    assert!(!has_control(&t), "raw control characters reach the terminal: {t:?}");
    assert!(t.contains("\\u{1b}]0;PWNED\\u{7}"), "{t}");
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!has_control(&e), "{e:?}");
}

/// A world whose hook publishes `public/` (committed) to an rclone `alias` remote: a local
/// folder stands for the bucket, since what is tested is what deploy-hook asks of it.
fn alias_bucket_world(name: &str) -> (World, std::path::PathBuf) {
    let w = World::new(name);
    let bucket = w.path("bucket");
    // rclone's `cat` of a missing file on a local remote says "directory not found", as
    // for a missing bucket: the first publish finds a manifest it cannot use instead.
    fs::create_dir_all(bucket.join("site/.deploy-hook")).unwrap();
    fs::write(bucket.join("site/.deploy-hook/release.json"), "{}").unwrap();
    let conf = w.path("rclone.conf");
    fs::write(&conf, format!("[b]\ntype = alias\nremote = {}\n", bucket.display())).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nsteps = [[\"true\"]]\n[hooks.docs.publish]\nfrom = \"public\"\nbucket = \"b:site\"\nrclone_config = {:?}\n",
            conf.display()
        ),
    );
    fs::create_dir_all(w.seed.join("public")).unwrap();
    w.push("public/index.html", "v1\n");
    (w, bucket)
}

#[test]
fn a_bucket_manifest_naming_paths_outside_the_site_is_ignored() {
    requires!(S3);
    let (w, bucket) = alias_bucket_world("manifest-damaged");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let manifest = bucket.join("site/.deploy-hook/release.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();

    // Whoever holds the bucket's keys rewrites the manifest: its release leads out of the
    // releases folder, and its kept list names objects outside the bucket path, which the
    // next publish would delete.
    fs::write(bucket.join("precious.txt"), "not the site's\n").unwrap();
    fs::create_dir_all(w.path("outside")).unwrap();
    fs::write(w.path("outside/precious.txt"), "not the bucket's\n").unwrap();
    m["release"] = "../../../outside".into();
    m["kept"] = serde_json::json!([
        "../precious.txt",
        "../../outside/precious.txt",
        "index.html/../../precious.txt"
    ]);
    fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();

    w.push("public/index.html", "v2\n");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let log = w.log_text(&w.status()["last"]);
    assert!(
        log.contains(".deploy-hook/release.json in the bucket is damaged, \"../../../outside\" is not a release name: it is ignored, every file is sent, nothing is deleted"),
        "{log}"
    );
    assert_eq!(
        fs::read_to_string(bucket.join("precious.txt")).unwrap(),
        "not the site's\n"
    );
    assert_eq!(
        fs::read_to_string(w.path("outside/precious.txt")).unwrap(),
        "not the bucket's\n"
    );
    assert_eq!(fs::read_to_string(bucket.join("site/index.html")).unwrap(), "v2\n");

    // The same with a good release name but a kept path that climbs out.
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    m["kept"] = serde_json::json!(["../precious.txt"]);
    fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    w.push("public/index.html", "v3\n");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let log = w.log_text(&w.status()["last"]);
    assert!(
        log.contains("is damaged, \"../precious.txt\" is not a plain relative path of the site"),
        "{log}"
    );
    assert_eq!(
        fs::read_to_string(bucket.join("precious.txt")).unwrap(),
        "not the site's\n"
    );
    // And the manifest the publish wrote is a good one again.
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m["kept"], serde_json::json!([]), "{m}");
}

/// A root world (everything root's: a command started as root stays root) whose hook
/// records who ran its step, publishes `public/` to an rclone alias bucket, with `extra`
/// TOML in the hook's table and `publish` in its publish table.
fn root_bucket_world(name: &str, extra: &str, publish: &str) -> (World, std::path::PathBuf) {
    let w = World::new(name);
    let who = w.path("who-built");
    let bucket = w.path("bucket");
    fs::create_dir_all(bucket.join("site/.deploy-hook")).unwrap();
    fs::write(bucket.join("site/.deploy-hook/release.json"), "{}").unwrap();
    fs::create_dir_all(w.path("etc")).unwrap();
    let conf = w.path("etc/rclone.conf");
    fs::write(&conf, format!("[b]\ntype = alias\nremote = {}\n", bucket.display())).unwrap();
    // As docs/bucket.md installs it: root writes it, the web server's group reads it.
    crate::check::chown("root:www-data", false, &conf);
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o640)).unwrap();
    w.config(
        "gitlab",
        &format!(
            "steps = [[\"sh\", \"-c\", \"id -u >> {}\"]]\n{extra}\n[hooks.docs.publish]\nfrom = \"public\"\nbucket = \"b:site\"\nrclone_config = {:?}\n{publish}\n",
            who.display(),
            conf.display()
        ),
    );
    fs::create_dir_all(w.seed.join("public")).unwrap();
    w.push("public/index.html", "v1\n");
    (w, who)
}

/// `run docs --wait` as root refuses (77), saying what `what` at `path` is, and no step ran.
fn refuses(w: &World, who: &std::path::Path, what: &str, path: &std::path::Path, why: &str) -> String {
    let _ = fs::remove_file(who);
    let out = w.cmd(&["run", "docs", "--wait"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(77), "{what}: {t}");
    assert!(
        t.contains(&format!("its {what} {} is not root's alone: {why}", path.display())),
        "{t}"
    );
    assert!(!who.exists(), "a step ran as root: {t}");
    // check says the same.
    let c = text(&w.cmd(&["check"]));
    assert!(
        c.contains("a command started as root would refuse to run") && c.contains(what),
        "{c}"
    );
    t
}

#[test]
fn staying_root_needs_the_rclone_config_and_the_path_folders_to_be_roots_alone() {
    requires!(Root, WwwData, S3);
    let (w, who) = root_bucket_world("root-reads", "", "");
    // rclone.conf 640 root:www-data in a folder of root's: root stays root, publishes, and
    // check takes the mode.
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(&who).unwrap(), "0\n");
    let c = text(&w.cmd(&["check"]));
    let conf = w.path("etc/rclone.conf");
    assert!(
        c.contains(&format!(
            "ok    rclone_config {} is readable by its owner and group only (mode 0640)",
            conf.display()
        )),
        "{c}"
    );

    // www-data could rewrite it (a union remote with a symlink to root's folder): refused.
    crate::check::chown("www-data:www-data", false, &conf);
    let t = refuses(
        &w,
        &who,
        "publish.rclone_config",
        &conf,
        &format!("{} is www-data's", conf.display()),
    );
    assert!(
        t.contains(&format!(
            "or make it root's alone, in a folder only root can write: chown root:www-data {c} && chmod 640 {c}",
            c = conf.display()
        )),
        "{t}"
    );
    // Root's, but in a folder www-data can write (it could swap the file).
    crate::check::chown("root:www-data", false, &conf);
    crate::check::chown("www-data:www-data", false, &w.path("etc"));
    refuses(
        &w,
        &who,
        "publish.rclone_config",
        &conf,
        &format!("{} belongs to www-data", w.path("etc").display()),
    );
    crate::check::chown("root:root", false, &w.path("etc"));

    // A folder of www-data's on the hook's path: an `rclone` or `sh` planted there would
    // run as root.
    let bin = w.path("bin");
    fs::create_dir_all(&bin).unwrap();
    crate::check::chown("www-data:www-data", false, &bin);
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let config = fs::read_to_string(&w.config).unwrap();
    fs::write(
        &w.config,
        config.replace(
            "[hooks.docs.publish]",
            &format!("path = {path:?}\n[hooks.docs.publish]"),
        ),
    )
    .unwrap();
    refuses(
        &w,
        &who,
        "path folder",
        &bin,
        &format!("{} is www-data's", bin.display()),
    );
    // The folder root's, a program in it www-data's.
    crate::check::chown("root:root", false, &bin);
    fs::write(bin.join("rclone"), "#!/bin/sh\nexec /usr/bin/rclone \"$@\"\n").unwrap();
    fs::set_permissions(bin.join("rclone"), fs::Permissions::from_mode(0o755)).unwrap();
    crate::check::chown("www-data:www-data", false, &bin.join("rclone"));
    refuses(
        &w,
        &who,
        "path folder",
        &bin,
        &format!("{} is www-data's", bin.join("rclone").display()),
    );
    // Root's alone again: root stays root and builds, through that rclone.
    crate::check::chown("root:root", false, &bin.join("rclone"));
    w.push("public/index.html", "v2\n");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(&who).unwrap(), "0\n");
}

#[test]
fn staying_root_needs_the_programs_and_ssh_files_the_config_names_to_be_roots_alone() {
    requires!(Root, WwwData, S3);
    let (w, who) = root_bucket_world("root-programs", "", "");
    // A step's program named by its full path, in a folder of www-data's.
    let dir = w.path("tools");
    fs::create_dir_all(&dir).unwrap();
    let script = dir.join("build.sh");
    fs::write(&script, format!("#!/bin/sh\nid -u >> {}\n", who.display())).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    crate::check::chown("www-data:www-data", true, &dir);
    let config = fs::read_to_string(&w.config).unwrap();
    let steps = format!("steps = [[{:?}]]", script.to_str().unwrap());
    let with_step = config
        .lines()
        .map(|l| {
            if l.starts_with("steps = ") {
                steps.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(&w.config, &with_step).unwrap();
    refuses(
        &w,
        &who,
        "steps program",
        &script,
        &format!("{} belongs to www-data", dir.display()),
    );
    crate::check::chown("root:root", false, &dir);
    refuses(
        &w,
        &who,
        "steps program",
        &script,
        &format!("{} is www-data's", script.display()),
    );
    crate::check::chown("root:root", true, &dir);
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(&who).unwrap(), "0\n");

    // Web hosts through an ssh config www-data can change (a ProxyCommand in it would run
    // as root), and a key that config names.
    let ssh_config = w.path("etc/ssh_config");
    let key = w.path("etc/id_ed25519");
    fs::write(
        &ssh_config,
        format!(
            "Host web1\n  HostName 127.0.0.1\n  GlobalKnownHostsFile /dev/null\n  IdentityFile {}\n",
            key.display()
        ),
    )
    .unwrap();
    fs::write(&key, "not a key\n").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let hosts = format!(
        "[hooks.docs.publish]\nhosts = [\"web1:/var/www/docs\"]\nssh = [\"ssh\", \"-F\", {:?}]\n",
        ssh_config.to_str().unwrap()
    );
    let start = with_step.find("[hooks.docs.publish]").unwrap();
    fs::write(&w.config, format!("{}{hosts}from = \"public\"\n", &with_step[..start])).unwrap();
    crate::check::chown("www-data:www-data", false, &ssh_config);
    refuses(
        &w,
        &who,
        "publish.ssh -F config",
        &ssh_config,
        &format!("{} is www-data's", ssh_config.display()),
    );
    crate::check::chown("root:root", false, &ssh_config);
    crate::check::chown("www-data:www-data", false, &key);
    refuses(
        &w,
        &who,
        &format!("IdentityFile (in {})", ssh_config.display()),
        &key,
        &format!("{} is www-data's", key.display()),
    );

    crate::check::chown("root:root", false, &key);

    // The report's token, a robot's URL (root reads them and sends them away) and the
    // build page's folder (root writes there).
    let token = w.path("etc/token");
    let robot = w.path("etc/robot.url");
    fs::write(&token, "t0ken\n").unwrap();
    fs::write(&robot, "https://chat.example.com/hook?access_token=x\n").unwrap();
    let pages = w.path("pages");
    fs::create_dir_all(&pages).unwrap();
    fs::write(
        &w.config,
        format!(
            "{}[hooks.docs.publish]\nfrom = \"public\"\nbucket = \"b:site\"\nrclone_config = {:?}\n\
             [hooks.docs.report]\nrepo = \"a/b\"\ntoken_file = {:?}\n\
             [hooks.docs.page]\ndir = {:?}\nurl = \"https://docs.example.com/_builds/\"\n\
             [[hooks.docs.notify]]\nkind = \"slack\"\nurl_file = {:?}\n",
            &with_step[..start],
            w.path("etc/rclone.conf"),
            token,
            pages,
            robot
        ),
    )
    .unwrap();
    let out = w.cmd(&["check"]);
    assert!(!text(&out).contains("would refuse to run"), "{}", text(&out));
    crate::check::chown("www-data:www-data", false, &token);
    refuses(
        &w,
        &who,
        "report.token_file",
        &token,
        &format!("{} is www-data's", token.display()),
    );
    crate::check::chown("root:root", false, &token);
    crate::check::chown("www-data:www-data", false, &robot);
    refuses(
        &w,
        &who,
        "notify (slack) url_file",
        &robot,
        &format!("{} is www-data's", robot.display()),
    );
    crate::check::chown("root:root", false, &robot);
    crate::check::chown("www-data:www-data", false, &pages);
    refuses(
        &w,
        &who,
        "page.dir",
        &pages,
        &format!("{} is www-data's", pages.display()),
    );
}

#[test]
fn check_warns_of_gitee_signing_hooks_that_share_a_secret() {
    let w = World::new("gitee-shared");
    let other = w.path("blog.secret");
    let config = |blog_secret: &std::path::Path, blog_mode: &str| {
        w.config(
            "gitee",
            &format!(
                "steps = [\"true\"]\n\n[hooks.blog]\nprovider = \"gitee\"\n{blog_mode}\nsecret_file = {:?}\nrepo = {:?}\nsteps = [\"true\"]\n",
                blog_secret.display(),
                w.repo.display()
            ),
        );
        let out = w.cmd(&["check"]);
        let t = text(&out);
        assert!(!t.contains(SECRET), "{t}");
        t
    };
    let warning = "Gitee hooks blog and docs sign with the same secret";
    // One file for both.
    let t = config(&w.secret_file, "");
    assert!(
        t.contains(&format!(
            "warn  {warning} (secret_file {}): Gitee's signature covers only the timestamp and the secret, so a delivery to one can be replayed to the other; give each hook its own secret",
            w.secret_file.display()
        )),
        "{t}"
    );
    // Two files, one secret (spaces around it are no part of it).
    fs::write(&other, format!("  {SECRET}\n\n")).unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o600)).unwrap();
    let t = config(&other, "");
    assert!(t.contains(&format!("warn  {warning}: Gitee's signature")), "{t}");
    let json = text(&w.cmd(&["check", "--json"]));
    assert!(json.contains(warning) && !json.contains(SECRET), "{json}");
    // A secret of its own, or a hook in password mode (no signature to replay): nothing.
    fs::write(&other, "another-secret\n").unwrap();
    assert!(!config(&other, "").contains(warning));
    assert!(!config(&w.secret_file, "gitee_mode = \"password\"").contains(warning));
}

#[test]
fn a_bucket_that_accepts_and_never_answers_fails_the_publish_in_seconds_not_at_step_timeout() {
    requires!(S3);
    let w = World::new("bucket-silent");
    // An S3 endpoint that takes every connection and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let conf = w.path("rclone.conf");
    fs::write(
        &conf,
        format!(
            "[s3]\ntype = s3\nprovider = Other\naccess_key_id = AK\nsecret_access_key = SK\nendpoint = http://127.0.0.1:{port}\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    // step_timeout is what used to stop it; rclone's own limits must come far sooner
    // (docs/bucket.md: at most 8 requests of 5 s each).
    w.config(
        "gitee",
        &format!(
            "mode = \"sync\"\nsteps = [[\"true\"]]\nstep_timeout_secs = 150\n[hooks.docs.publish]\nfrom = \"public\"\nbucket = \"s3:site/docs\"\nrclone_config = {:?}\n",
            conf.display()
        ),
    );
    fs::create_dir_all(w.seed.join("public")).unwrap();
    w.push("public/index.html", "v1\n");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let log = w.log_text(&w.status()["last"]);
    assert!(log.contains("publish failed at bucket: rclone cat failed"), "{log}");
    // Which of rclone's limits fires first varies from run to run: the one on the
    // response headers or the one on an idle connection. Either is rclone's own.
    assert!(
        log.contains("timeout awaiting response headers") || log.contains("i/o timeout"),
        "{log}"
    );
    assert!(!log.contains("took longer than"), "{log}");
}

/// Runs `script` with `sh -c` as www-data: what a build step (the repository's code) can
/// do to the state folder and the publish target, which are www-data's.
fn as_www_data_sh(script: &str) {
    let out = std::process::Command::new("/usr/sbin/runuser")
        .args(["-u", "www-data", "--", "sh", "-euc", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {}", text(&out));
}

#[test]
fn check_fails_on_symlinks_planted_where_deploy_hook_makes_its_own_files() {
    requires!(Root, WwwData);
    let w = crate::check::www_data_world("check-planted");
    let site = w.path("www/site");
    w.config(
        "gitlab",
        &format!(
            "steps = [[\"sh\", \"-c\", \"mkdir -p out && echo $DEPLOY_HOOK_COMMIT > out/index.html\"]]\n[hooks.docs.publish]\nfrom = \"out\"\nto = {:?}\n",
            site.to_str().unwrap()
        ),
    );
    let out = crate::check::as_www_data(&w, &["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = w.cmd(&["check"]);
    assert!(out.status.success(), "{}", text(&out));

    // A folder of root's alone, and in it what a symlink would make www-data open.
    let vault = w.path("vault");
    fs::create_dir(&vault).unwrap();
    fs::write(vault.join("victim"), "root's\n").unwrap();
    fs::set_permissions(&vault, fs::Permissions::from_mode(0o700)).unwrap();
    let v = vault.display();
    let hook = w.hook_dir();
    let h = hook.display();
    let planted = [
        "status.json",
        "build.lock",
        "state.lock",
        "seen-tokens",
        "worker.log",
        "builder",
    ];
    let mut script = String::new();
    for name in planted {
        script.push_str(&format!("rm -f {h}/{name}; ln -s {v}/{name} {h}/{name}\n"));
    }
    as_www_data_sh(&script);

    // What fails meanwhile names the symlink and its fix: a delivery (500, its log line),
    // `status`, `run`.
    let said = format!("(it is a symlink to {v}/");
    let r = w
        .cgi()
        .wrap(&["/usr/sbin/runuser", "-u", "www-data", "--"])
        .header("X-Gitlab-Token", SECRET)
        .header("X-Gitlab-Event", "Push Hook")
        .body(br#"{"object_kind":"push","ref":"refs/heads/main","after":"1111111111111111111111111111111111111111"}"#)
        .run();
    assert_eq!(r.status, 500, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{h}/state.lock {said}state.lock, and deploy-hook makes this file itself: remove it, rm -- {h}/state.lock)"
        )),
        "{}",
        r.stderr
    );
    // (Which of the planted files each meets first is theirs to choose.)
    let fix = format!(", and deploy-hook makes this file itself: remove it, rm -- {h}/");
    for args in [&["status", "docs"][..], &["run", "docs", "--wait"][..]] {
        let out = crate::check::as_www_data(&w, args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(74), "{args:?}: {t}");
        assert!(t.contains(&said) && t.contains(&fix), "{args:?}: {t}");
    }

    // A FIFO where a file is expected (opening it blocks), a file where a folder is.
    as_www_data_sh(&format!("mkfifo {h}/pending; rm -rf {h}/builds; echo x > {h}/builds"));
    // And a hard link to root's file (where the kernel lets one be made): `chown -R`, the
    // fix for a file that is not www-data's, would give root's file away.
    fs::hard_link(vault.join("victim"), hook.join("force")).unwrap();
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(!t.contains("everything holds"), "{t}");
    assert!(!t.contains(&format!("state folder {h}: every file is")), "{t}");
    assert!(
        t.contains(&format!(
            "state folder {h}: 6 files that deploy-hook makes itself are symlinks, which it would open and write through: {h}/build.lock (to {v}/build.lock), {h}/builder (to {v}/builder), {h}/seen-tokens (to {v}/seen-tokens), and 3 more"
        )),
        "{t}"
    );
    let links: Vec<String> = [
        "build.lock",
        "builder",
        "seen-tokens",
        "state.lock",
        "status.json",
        "worker.log",
    ]
    .iter()
    .map(|n| format!("{h}/{n}"))
    .collect();
    assert!(t.contains(&format!("fix: rm -- {}\n", links.join(" "))), "{t}");
    assert!(
        t.contains(&format!(
            "state folder {h}: 3 files that deploy-hook makes itself are not what it makes: {h}/builds (a file, not a folder), {h}/force (a hard link to a file of root's), {h}/pending (a FIFO, not a file)"
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!("fix: rm -- {h}/builds {h}/force {h}/pending\n")),
        "{t}"
    );
    assert!(!t.contains("chown"), "{t}");

    // The fixes, applied (as root, as an admin would), make the state folder hold again.
    for p in links
        .iter()
        .chain([&format!("{h}/builds"), &format!("{h}/force"), &format!("{h}/pending")])
    {
        fs::remove_file(p).unwrap();
    }
    let out = w.cmd(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(vault.join("victim")).unwrap(), "root's\n");

    // The served path pointed out of its releases (a name with an escape sequence in it),
    // then its releases folder made a symlink to root's folder.
    let releases = w.path("www/site.releases");
    let r = releases.display();
    let s = site.display();
    as_www_data_sh(&format!("ln -sfn '{v}/x\x1b[2J' {s}"));
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(!has_control(&t), "{t:?}");
    assert!(
        t.contains(&format!(
            "FAIL  publish: {s} is a symlink to {v}/x\\u{{1b}}[2J, which is not a release in {r}"
        )),
        "{t}"
    );
    assert!(t.contains(&format!("fix: rm -- {s} && deploy-hook run docs")), "{t}");
    as_www_data_sh(&format!("mv {r} {r}.kept; ln -s {v} {r}; ln -sfn {v}/victim {s}"));
    let out = w.cmd(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "FAIL  publish: {r} is a symlink to {v}: deploy-hook makes it itself, a folder, and would publish into it and lock it through the link"
        )),
        "{t}"
    );
    assert!(t.contains(&format!("fix: rm -- {r} && ")), "{t}");
    let out = crate::check::as_www_data(&w, &["run", "docs", "--wait"]);
    let run = text(&out);
    assert_eq!(out.status.code(), Some(74), "{run}");
    assert!(
        run.contains(&format!(
            "({r} is a symlink to it, and deploy-hook makes that folder itself: remove it, rm -- {r}, and build again)"
        )),
        "{run}"
    );
    assert!(
        t.contains(&format!(
            "publish: {s} is a symlink to {v}/victim, which is not a release in {r}"
        )),
        "{t}"
    );
    // Applied, with a build to publish again: everything holds.
    fs::remove_file(&releases).unwrap();
    fs::remove_file(&site).unwrap();
    fs::rename(w.path("www/site.releases.kept"), &releases).unwrap();
    let out = crate::check::as_www_data(&w, &["run", "docs", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = w.cmd(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(vault.join("victim")).unwrap(), "root's\n");
}
