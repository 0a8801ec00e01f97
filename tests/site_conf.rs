//! nginx/site.conf, the server block for the published site, through a real nginx: clean
//! URLs work, an unknown URL is a 404 (the site's 404 page, with status 404), and before
//! the first publish every URL is a 404, not a 500.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// nginx on a free loopback port serving `nginx/site.conf` with `root` set to `to`; killed
/// and reaped on drop.
struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // master_process off: this one process is all of nginx
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_serving(w: &World, file: &str, root: &str, to: &std::path::Path) -> Nginx {
    let dir = w.path(&format!("nginx-{}", file.replace('/', "-")));
    fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let snippet = dir.join("fcgiwrap.conf");
    let fcgiwrap = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fcgiwrap.conf")).unwrap();
    // The snippet's `include fastcgi_params;` finds the copy next to nginx.conf.
    crate::own_web::write_fastcgi_params(&dir);
    fs::write(&snippet, fcgiwrap).unwrap();
    let site = fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("listen [::]:80;", "")
        .replace("snippets/deploy-hook-fcgiwrap.conf", snippet.to_str().unwrap())
        .replace(&format!("root {root};"), &format!("root {};", to.display()));
    assert!(site.contains(&format!("127.0.0.1:{port}")), "{file}: no `listen 80;`");
    assert!(
        site.contains(&format!("root {};", to.display())),
        "{file}: no `root {root};`"
    );
    fs::write(dir.join("site.conf"), site).unwrap();
    fs::write(
        dir.join("nginx.conf"),
        format!(
            "worker_processes 1;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\ndaemon off;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/client_body;\n  fastcgi_temp_path {d}/fastcgi;\n  proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let nginx = if std::path::Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    };
    let child = Command::new(nginx)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Nginx { child, port };
    wait_for("nginx to listen", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    server
}

/// GET `path`: the status and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: docs.example.com\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status: {reply}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_site_snippet_answers_404_for_unknown_urls_before_and_after_the_first_publish() {
    requires!(Nginx);
    serves_the_site_with_real_404s("nginx/site.conf", "/var/www/docs");
}

#[test]
fn the_hooks_server_block_serves_the_site_with_real_404s_too() {
    requires!(Nginx);
    serves_the_site_with_real_404s("nginx/deploy-hook.conf", "/var/www/docs/site");
}

fn serves_the_site_with_real_404s(file: &str, root: &str) {
    let w = World::new("site-conf");
    let to = w.path("www/docs");
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    w.push("public/index.html", "<h1>home</h1>\n");
    w.push("public/guide.html", "<h1>guide</h1>\n");
    w.push("public/404.html", "<h1>the site's own not found page</h1>\n");
    w.config(
        "gitee",
        &format!(
            "steps = [\"true\"]\n[hooks.docs.publish]\nfrom = \"public\"\nto = {:?}\n",
            to.to_str().unwrap()
        ),
    );
    let nginx = nginx_serving(&w, file, root, &to);

    // before the first publish: no site at all, and no 500
    for path in ["/", "/guide", "/nope"] {
        assert_eq!(get(nginx.port, path).0, 404, "{file}: {path} before the first publish");
    }

    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(nginx.port, "/"), (200, "<h1>home</h1>\n".into()));
    assert_eq!(get(nginx.port, "/guide"), (200, "<h1>guide</h1>\n".into()));
    assert_eq!(get(nginx.port, "/guide.html").0, 200);
    let (status, body) = get(nginx.port, "/no/such/page");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("the site's own not found page"), "{body}");
}

/// Apache on a free loopback port serving `apache/site.conf` with its DocumentRoot set to
/// `to`, as www-data; stopped on drop.
fn apache_serving(w: &World, to: &std::path::Path) -> (crate::servers::Proc, u16) {
    let dir = w.path("apache-site");
    fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let root = "/var/www/docs/site";
    let shipped = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/apache/site.conf")).unwrap();
    assert!(
        shipped.contains(&format!("DocumentRoot {root}\n")),
        "apache/site.conf: no DocumentRoot {root}"
    );
    assert!(
        shipped.contains("<VirtualHost *:80>"),
        "apache/site.conf: no <VirtualHost *:80>"
    );
    let site = shipped
        .replace(root, to.to_str().unwrap())
        .replace("<VirtualHost *:80>", &format!("<VirtualHost *:{port}>"));
    fs::write(dir.join("site.conf"), site).unwrap();
    // Debian's apache2.conf grants /var/www/ (with Indexes): here the world's www folder.
    let www = w.path("www");
    let m = "/usr/lib/apache2/modules";
    let modules: String = [
        "mpm_event",
        "authz_core",
        "alias",
        "rewrite",
        "dir",
        "mime",
        "autoindex",
    ]
    .iter()
    .map(|n| format!("LoadModule {n}_module {m}/mod_{n}.so\n"))
    .collect();
    fs::write(
        dir.join("httpd.conf"),
        format!(
            "ServerRoot {d}\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\nDefaultRuntimeDir {d}\nMutex file:{d} default\nErrorLog {d}/error.log\nTypesConfig /dev/null\nUser www-data\nGroup www-data\n{modules}\
             <Directory />\n    Require all denied\n</Directory>\n<Directory {www}/>\n    Options Indexes FollowSymLinks\n    Require all granted\n</Directory>\nInclude {d}/site.conf\n",
            d = dir.display(),
            www = www.display()
        ),
    )
    .unwrap();
    assert!(Command::new("chown")
        .args(["-R", "www-data:www-data"])
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    let apache = crate::servers::spawn(
        "apache2",
        Command::new(crate::servers::find("apache2"))
            .arg("-f")
            .arg(dir.join("httpd.conf"))
            .arg("-DFOREGROUND")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("apache.stderr")).unwrap()),
    );
    crate::servers::wait_listening(port, &dir.join("error.log"));
    (apache, port)
}

#[test]
fn the_apache_site_serves_clean_urls_and_the_sites_own_404_as_nginx_does() {
    requires!(Root, WwwData, Apache);
    let w = World::new("site-apache");
    let to = w.path("www/docs/site");
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    w.push("public/index.html", "<h1>home</h1>\n");
    w.push("public/guide.html", "<h1>guide</h1>\n");
    w.push("public/sub/index.html", "<h1>sub</h1>\n");
    w.push("public/404.html", "<h1>the site's own not found page</h1>\n");
    w.config(
        "gitee",
        &format!(
            "steps = [\"true\"]\n[hooks.docs.publish]\nfrom = \"public\"\nto = {:?}\n",
            to.to_str().unwrap()
        ),
    );
    let (_apache, port) = apache_serving(&w, &to);

    // before the first publish: no site at all, and no 500
    for path in ["/", "/guide", "/nope"] {
        assert_eq!(get(port, path).0, 404, "{path} before the first publish");
    }

    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(port, "/"), (200, "<h1>home</h1>\n".into()));
    assert_eq!(get(port, "/guide"), (200, "<h1>guide</h1>\n".into()));
    assert_eq!(get(port, "/guide?x=1"), (200, "<h1>guide</h1>\n".into()));
    assert_eq!(get(port, "/guide.html").0, 200);
    assert_eq!(get(port, "/sub/"), (200, "<h1>sub</h1>\n".into()));
    let (status, body) = get(port, "/no/such/page");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("the site's own not found page"), "{body}");

    // the next build is seen at once through the switched symlink
    w.push("public/guide.html", "<h1>guide 2</h1>\n");
    let out = w.cmd(&["run", "docs", "--wait"]);
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(port, "/guide"), (200, "<h1>guide 2</h1>\n".into()));
}
