//! The web servers `check` sees in the tests: each world's own nginx and Apache configs,
//! never the machine's (a machine with deploy-hook installed for real has a site in
//! /etc/nginx that runs /usr/bin/deploy-hook, which check rightly calls another copy).
//!
//! check runs the `nginx` and `apache2ctl` it finds first on PATH, as an admin's shell
//! would. Every command a World runs gets a folder first on its PATH (`OwnWeb::bin`) whose
//! `nginx` is the real nginx with the world's config (`-p DIR -c DIR/nginx.conf`), and whose
//! `apache2ctl` is Debian's own with `APACHE_CONFDIR=DIR`, its documented way to run a
//! second instance. Both start with no site that runs deploy-hook; a test gives them one
//! with `nginx_site` and `apache_site`. Where the real program is not installed, no
//! wrapper is made and check finds none, as on that machine.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The standard CGI variables nginx hands a FastCGI program, as nginx's own
/// `fastcgi_params` lists them: the shipped snippet's `include fastcgi_params;` finds this
/// copy next to the world's nginx.conf instead of the machine's /etc/nginx.
pub const FASTCGI_PARAMS: &str = "\
fastcgi_param  QUERY_STRING       $query_string;
fastcgi_param  REQUEST_METHOD     $request_method;
fastcgi_param  CONTENT_TYPE       $content_type;
fastcgi_param  CONTENT_LENGTH     $content_length;
fastcgi_param  SCRIPT_NAME        $fastcgi_script_name;
fastcgi_param  REQUEST_URI        $request_uri;
fastcgi_param  DOCUMENT_URI       $document_uri;
fastcgi_param  DOCUMENT_ROOT      $document_root;
fastcgi_param  SERVER_PROTOCOL    $server_protocol;
fastcgi_param  REQUEST_SCHEME     $scheme;
fastcgi_param  HTTPS              $https if_not_empty;
fastcgi_param  GATEWAY_INTERFACE  CGI/1.1;
fastcgi_param  SERVER_SOFTWARE    nginx/$nginx_version;
fastcgi_param  REMOTE_ADDR        $remote_addr;
fastcgi_param  REMOTE_PORT        $remote_port;
fastcgi_param  SERVER_ADDR        $server_addr;
fastcgi_param  SERVER_PORT        $server_port;
fastcgi_param  SERVER_NAME        $server_name;
fastcgi_param  HTTP_HOST          $host;
";

/// Writes `fastcgi_params` into `dir`, for an nginx whose config is in `dir`.
pub fn write_fastcgi_params(dir: &Path) {
    fs::write(dir.join("fastcgi_params"), FASTCGI_PARAMS).unwrap();
}

/// Where check would find `program`: the test's PATH, then the folders check adds.
fn installed(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain([
            "/usr/local/bin",
            "/usr/bin",
            "/bin",
            "/usr/local/sbin",
            "/usr/sbin",
            "/sbin",
        ])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file() && p.metadata().is_ok_and(|m| m.permissions().mode() & 0o111 != 0));
    found
}

fn script(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// One world's own nginx and Apache, as check sees them (nothing is started; a test may
/// start Apache with `start_apache`).
pub struct OwnWeb {
    dir: PathBuf,
    /// The port Apache's config listens on (free when the world was made).
    pub apache_port: u16,
}

impl OwnWeb {
    /// Makes the configs and wrappers under `dir`.
    pub fn new(dir: PathBuf) -> OwnWeb {
        let web = OwnWeb {
            dir,
            apache_port: crate::util::free_port(),
        };
        let (bin, nginx, apache) = (web.bin(), web.nginx_dir(), web.apache_dir());
        for d in [&bin, &nginx.join("snippets"), &apache.join("conf-enabled")] {
            fs::create_dir_all(d).unwrap();
        }
        // nginx -t writes its pid file, as whichever user runs check (root or www-data).
        let run = web.dir.join("run");
        fs::create_dir_all(&run).unwrap();
        fs::set_permissions(&run, fs::Permissions::from_mode(0o1777)).unwrap();
        write_fastcgi_params(&nginx);
        fs::write(
            nginx.join("nginx.conf"),
            format!(
                "pid {run}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n  include {d}/site.conf;\n}}\n",
                run = run.display(),
                d = nginx.display()
            ),
        )
        .unwrap();
        web.nginx_site("");
        web.apache_site("", "");
        if let Some(real) = installed("nginx") {
            script(
                &bin.join("nginx"),
                &format!(
                    "#!/bin/sh\nexec '{}' -e stderr -p '{d}/' -c '{d}/nginx.conf' \"$@\"\n",
                    real.display(),
                    d = nginx.display()
                ),
            );
        }
        if let Some(real) = installed("apache2ctl") {
            script(
                &bin.join("apache2ctl"),
                &format!(
                    "#!/bin/sh\nAPACHE_CONFDIR='{}'\nexport APACHE_CONFDIR\nexec '{}' \"$@\"\n",
                    apache.display(),
                    real.display()
                ),
            );
        }
        web
    }

    /// The folder to put first on the PATH of a command that may run check.
    pub fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// `rest` (a PATH) with `bin` first.
    pub fn path(&self, rest: &str) -> String {
        format!("{}:{rest}", self.bin().display())
    }

    /// Where nginx.conf is: relative includes in a site (`snippets/...`,
    /// `fastcgi_params`) are found here.
    pub fn nginx_dir(&self) -> PathBuf {
        self.dir.join("nginx")
    }

    pub fn apache_dir(&self) -> PathBuf {
        self.dir.join("apache")
    }

    /// Where both servers' pid files are (`nginx.pid`, `httpd.pid`): a server a test starts
    /// with this world's config writes its pid here, as a running one does in /run.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// The text of nginx's one site (inside `http { }`); `snippet` is written as
    /// `snippets/deploy-hook-fcgiwrap.conf` next to it.
    pub fn nginx_site_with_snippet(&self, site: &str, snippet: &str) {
        fs::write(self.nginx_dir().join("snippets/deploy-hook-fcgiwrap.conf"), snippet).unwrap();
        self.nginx_site(site);
    }

    pub fn nginx_site(&self, site: &str) {
        fs::write(self.nginx_dir().join("site.conf"), site).unwrap();
    }

    /// Apache's config: `user` as its User and Group (none when empty), mod_cgid loaded,
    /// and `site` as its one conf-enabled file (none when empty).
    pub fn apache_site(&self, user: &str, site: &str) {
        self.apache_with(user, true, site);
    }

    /// Starts Apache for real with this config (`apache_site` first), in the foreground,
    /// stopped when the returned process is dropped; its pid file is in `run_dir`.
    pub fn start_apache(&self) -> crate::servers::Proc {
        let apache = crate::servers::spawn(
            "apache2",
            std::process::Command::new(crate::servers::find("apache2"))
                .arg("-f")
                .arg(self.apache_dir().join("apache2.conf"))
                .arg("-DFOREGROUND")
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdout(std::process::Stdio::null())
                .stderr(fs::File::create(self.dir.join("apache.stderr")).unwrap()),
        );
        crate::servers::wait_listening(self.apache_port, &self.dir.join("apache.stderr"));
        apache
    }

    /// As `apache_site`, with mod_cgid loaded only when `cgid`.
    pub fn apache_with(&self, user: &str, cgid: bool, site: &str) {
        let d = self.apache_dir();
        let m = "/usr/lib/apache2/modules";
        let user = if user.is_empty() {
            String::new()
        } else {
            format!("User {user}\nGroup {user}\n")
        };
        let cgid = if cgid {
            format!("LoadModule cgid_module {m}/mod_cgid.so\n")
        } else {
            String::new()
        };
        fs::write(
            d.join("apache2.conf"),
            format!(
                "ServerRoot {d}\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\nPidFile {run}/httpd.pid\nDefaultRuntimeDir {run}\nErrorLog /dev/null\n{user}\
                 LoadModule mpm_event_module {m}/mod_mpm_event.so\nLoadModule authz_core_module {m}/mod_authz_core.so\nLoadModule alias_module {m}/mod_alias.so\n{cgid}LoadModule env_module {m}/mod_env.so\n\
                 IncludeOptional {d}/conf-enabled/*.conf\n",
                d = d.display(),
                run = self.dir.join("run").display(),
                port = self.apache_port,
            ),
        )
        .unwrap();
        let conf = d.join("conf-enabled/deploy-hook.conf");
        if site.is_empty() {
            let _ = fs::remove_file(conf);
        } else {
            fs::write(conf, site).unwrap();
        }
    }
}
