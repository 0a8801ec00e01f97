//! nginx's config as `nginx -T` prints it (every file it reads, in order): its servers,
//! their locations, and which of them hand a request to deploy-hook. And which location a
//! URL reaches, by nginx's own rule, so that `check` can tell whether `/hooks/NAME` (the
//! URL `init` prints and the docs give the forge) reaches deploy-hook with the hook's name.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use super::web::{Entry, DEFAULT_FCGIWRAP_SOCKET};

/// A directive: `name args;` or `name args { block }`.
#[derive(Debug, Clone)]
struct Directive {
    name: String,
    args: Vec<String>,
    block: Option<Vec<Directive>>,
    /// The file it is written in, as `nginx -T` names it.
    file: Rc<str>,
}

/// Splits nginx config text into words, `{`, `}` and `;`, without comments and quotes.
pub(super) fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '{' | '}' | ';' => out.push(c.to_string()),
            '"' | '\'' => {
                let mut w = String::new();
                // nginx unescapes only these; `\d` in a regex stays `\d`.
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\'' | '\\')) => w.push(e),
                            Some('t') => w.push('\t'),
                            Some('r') => w.push('\r'),
                            Some('n') => w.push('\n'),
                            Some(e) => {
                                w.push('\\');
                                w.push(e);
                            }
                            None => w.push('\\'),
                        },
                        d if d == c => break,
                        d => w.push(d),
                    }
                }
                out.push(w);
            }
            c if c.is_whitespace() => {}
            c => {
                let mut w = c.to_string();
                while let Some(&d) = chars.peek() {
                    if d.is_whitespace() || "{};".contains(d) {
                        break;
                    }
                    w.push(d);
                    chars.next();
                }
                out.push(w);
            }
        }
    }
    out
}

fn parse_block(tokens: &[String], i: &mut usize, file: &Rc<str>) -> Vec<Directive> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    while *i < tokens.len() {
        let t = &tokens[*i];
        *i += 1;
        match t.as_str() {
            ";" => {
                if !words.is_empty() {
                    out.push(Directive {
                        name: words.remove(0),
                        args: std::mem::take(&mut words),
                        block: None,
                        file: file.clone(),
                    });
                }
            }
            "{" => {
                let block = parse_block(tokens, i, file);
                if !words.is_empty() {
                    out.push(Directive {
                        name: words.remove(0),
                        args: std::mem::take(&mut words),
                        block: Some(block),
                        file: file.clone(),
                    });
                }
            }
            "}" => return out,
            _ => words.push(t.clone()),
        }
    }
    out
}

/// `*` and `?` as nginx's include globs use them.
fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// Replaces every `include` with the directives of the files it names, as `nginx -T`
/// printed them.
fn expand(
    directives: Vec<Directive>,
    files: &BTreeMap<String, Vec<Directive>>,
    base: &Path,
    depth: usize,
) -> Vec<Directive> {
    let mut out = Vec::new();
    for mut d in directives {
        if d.name == "include" && d.block.is_none() && depth < 16 {
            if let Some(arg) = d.args.first() {
                let pattern = if arg.starts_with('/') {
                    arg.clone()
                } else {
                    base.join(arg).display().to_string()
                };
                for (file, ds) in files {
                    if glob_match(&pattern, file) {
                        out.extend(expand(ds.clone(), files, base, depth + 1));
                    }
                }
            }
            continue;
        }
        if let Some(b) = d.block.take() {
            d.block = Some(expand(b, files, base, depth + 1));
        }
        out.push(d);
    }
    out
}

/// How a location matches a URL (nginx's modifiers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Match {
    /// `location = /x`
    Exact,
    /// `location /x`
    Prefix,
    /// `location ^~ /x`: a prefix that, when longest, stops the regexes from being tried.
    PrefixStop,
    /// `location ~ re` (`ci`: `~*`).
    Regex { ci: bool },
}

/// A location of a server, in the order the config gives them.
#[derive(Debug, Clone)]
pub(super) struct Location {
    pub(super) how: Match,
    pub(super) pattern: String,
    /// Its index in `Parsed::entries` when it runs deploy-hook.
    pub(super) entry: Option<usize>,
}

/// A `server { }` block.
#[derive(Debug, Clone, Default)]
pub(super) struct Vhost {
    /// The file it is written in (a site file of sites-enabled, say).
    pub(super) file: String,
    /// Its `server_name`s.
    pub(super) names: Vec<String>,
    /// Some `listen` of it has `ssl` (or `ssl on;`): it serves https.
    pub(super) https: bool,
    /// Some `listen` of it has no `ssl`: it serves plain http.
    pub(super) http: bool,
    pub(super) locations: Vec<Location>,
}

impl Vhost {
    /// The name the forge would use: its first server_name that names a host (not `_`, a
    /// wildcard, a regex, or the example names of the shipped files, RFC 2606's).
    pub(super) fn host(&self) -> Option<&str> {
        let example = |n: &str| {
            ["example.com", "example.org", "example.net"]
                .iter()
                .any(|e| n == *e || n.ends_with(&format!(".{e}")))
        };
        self.names.iter().map(String::as_str).find(|n| {
            !n.is_empty() && *n != "_" && *n != "localhost" && !n.contains('*') && !n.starts_with('~') && !example(n)
        })
    }
}

/// What `nginx -T` says about deploy-hook: the locations that run it, and the servers.
#[derive(Debug, Clone, Default)]
pub(super) struct Parsed {
    pub(super) entries: Vec<Entry>,
    pub(super) vhosts: Vec<Vhost>,
}

/// Where a URL goes in a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    /// The location (its index in `Vhost::locations`).
    To(usize),
    /// No location matches: nginx serves the URL as a file (a 404 for a POST to a hook).
    Nowhere,
    /// A regex nginx accepts and we cannot read (this is not nginx's PCRE): not decided.
    Unknown(String),
}

/// The location nginx picks for `uri`: an exact match; else the longest prefix when it is
/// `^~`; else the first regex that matches, in the config's order; else the longest prefix.
pub(super) fn route(v: &Vhost, uri: &str) -> Route {
    if let Some(i) = v
        .locations
        .iter()
        .position(|l| l.how == Match::Exact && l.pattern == uri)
    {
        return Route::To(i);
    }
    let longest = v
        .locations
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l.how, Match::Prefix | Match::PrefixStop) && uri.starts_with(&l.pattern))
        .max_by_key(|(_, l)| l.pattern.len())
        .map(|(i, l)| (i, l.how == Match::PrefixStop));
    if let Some((i, true)) = longest {
        return Route::To(i);
    }
    for (i, l) in v.locations.iter().enumerate() {
        let Match::Regex { ci } = l.how else {
            continue;
        };
        let pattern = if ci {
            format!("(?i){}", l.pattern)
        } else {
            l.pattern.clone()
        };
        match regex_lite::Regex::new(&pattern) {
            Ok(re) if re.is_match(uri) => return Route::To(i),
            Ok(_) => {}
            Err(_) => return Route::Unknown(l.pattern.clone()),
        }
    }
    longest.map(|(i, _)| Route::To(i)).unwrap_or(Route::Nowhere)
}

/// The servers, and every location that hands a request to a program named deploy-hook,
/// from `nginx -T`.
pub(super) fn parse(dump: &str) -> Parsed {
    let mut files: BTreeMap<String, Vec<Directive>> = BTreeMap::new();
    let mut order = Vec::new();
    let mut current: Option<(String, String)> = None;
    let flush = |cur: Option<(String, String)>, files: &mut BTreeMap<String, Vec<Directive>>| {
        if let Some((name, text)) = cur {
            let t = tokens(&text);
            let mut i = 0;
            let file: Rc<str> = Rc::from(name.as_str());
            files.insert(name, parse_block(&t, &mut i, &file));
        }
    };
    for line in dump.lines() {
        if let Some(name) = line
            .strip_prefix("# configuration file ")
            .and_then(|l| l.strip_suffix(':'))
        {
            flush(current.take(), &mut files);
            order.push(name.to_string());
            current = Some((name.to_string(), String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    flush(current.take(), &mut files);
    let Some(main) = order.first() else {
        return Parsed::default();
    };
    let base = Path::new(main)
        .parent()
        .unwrap_or(Path::new("/etc/nginx"))
        .to_path_buf();
    let root = expand(files.get(main).cloned().unwrap_or_default(), &files, &base, 0);
    let mut parsed = Parsed::default();
    collect(&root, &[], None, &mut parsed);
    parsed
}

/// The value of `fastcgi_param NAME value` in `ds`, the last one winning.
fn param<'a>(ds: &'a [Directive], name: &str) -> Option<&'a str> {
    ds.iter()
        .filter(|d| d.name == "fastcgi_param" && d.args.first().map(String::as_str) == Some(name))
        .filter_map(|d| d.args.get(1).map(String::as_str))
        .next_back()
}

/// A location's modifier and pattern.
fn matcher(args: &[String]) -> Option<(Match, String)> {
    match args {
        [m, p] if m == "=" => Some((Match::Exact, p.clone())),
        [m, p] if m == "^~" => Some((Match::PrefixStop, p.clone())),
        [m, p] if m == "~" => Some((Match::Regex { ci: false }, p.clone())),
        [m, p] if m == "~*" => Some((Match::Regex { ci: true }, p.clone())),
        // `location =/x` and the like, written without a space.
        [p] if p.starts_with('=') => Some((Match::Exact, p[1..].to_string())),
        [p] if p.starts_with('@') => None,
        [p] => Some((Match::Prefix, p.clone())),
        _ => None,
    }
}

/// Walks the directives: a `server` starts a vhost, a `location` in it is listed (and
/// becomes an entry when it runs deploy-hook); `outer` holds the levels above, whose
/// `fastcgi_param`s a location inherits.
fn collect(ds: &[Directive], outer: &[&[Directive]], vhost: Option<usize>, out: &mut Parsed) {
    for d in ds {
        let Some(block) = &d.block else {
            continue;
        };
        let mut inner = vhost;
        if d.name == "server" && vhost.is_none() {
            let mut v = Vhost {
                file: d.file.to_string(),
                ..Vhost::default()
            };
            let ssl_on = block
                .iter()
                .any(|x| x.name == "ssl" && x.args.first().is_some_and(|a| a == "on"));
            let listens: Vec<&Directive> = block.iter().filter(|x| x.name == "listen").collect();
            for x in &listens {
                if ssl_on || x.args.iter().skip(1).any(|a| a == "ssl") {
                    v.https = true;
                } else {
                    v.http = true;
                }
            }
            // No listen: nginx's default, port 80 (8000 unprivileged), plain.
            if listens.is_empty() {
                v.http = true;
            }
            v.names = block
                .iter()
                .filter(|x| x.name == "server_name")
                .flat_map(|x| x.args.iter().cloned())
                .collect();
            out.vhosts.push(v);
            inner = Some(out.vhosts.len() - 1);
        }
        if d.name == "location" {
            let entry = location_entry(d, block, outer);
            let index = entry.map(|e| {
                out.entries.push(e);
                out.entries.len() - 1
            });
            if let (Some(v), Some((how, pattern))) = (inner, matcher(&d.args)) {
                out.vhosts[v].locations.push(Location {
                    how,
                    pattern,
                    entry: index,
                });
            }
        }
        let mut next: Vec<&[Directive]> = outer.to_vec();
        next.push(ds);
        collect(block, &next, inner, out);
    }
}

/// The entry for a location that hands its request to deploy-hook, else `None`.
fn location_entry(d: &Directive, block: &[Directive], outer: &[&[Directive]]) -> Option<Entry> {
    // fastcgi_param is inherited from outer levels only by a block that sets none.
    let own = block.iter().any(|x| x.name == "fastcgi_param");
    let lookup = |name: &str| {
        if own {
            param(block, name)
        } else {
            outer.iter().rev().find_map(|o| param(o, name))
        }
    };
    let script = lookup("SCRIPT_FILENAME");
    let config = lookup("DEPLOY_HOOK_CONFIG");
    let is_us = script.is_some_and(|s| {
        Path::new(s)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("deploy-hook"))
    }) || config.is_some();
    if !is_us {
        return None;
    }
    let path_info = lookup("PATH_INFO").is_some_and(|v| !v.is_empty() && v != "$fastcgi_path_info")
        || block.iter().any(|x| x.name == "fastcgi_split_path_info");
    let socket = block
        .iter()
        .rev()
        .find(|x| x.name == "fastcgi_pass")
        .and_then(|x| x.args.first())
        .and_then(|a| a.strip_prefix("unix:"))
        .map(str::to_string);
    Some(Entry {
        name: format!("location {}", d.args.join(" ")),
        file: d.file.to_string(),
        program: script.unwrap_or("(no SCRIPT_FILENAME)").to_string(),
        path_info,
        config: config.map(str::to_string),
        alias: None,
        socket: socket.or_else(|| Some(DEFAULT_FCGIWRAP_SOCKET.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "# configuration file /etc/nginx/nginx.conf:\nhttp { include /etc/nginx/sites-enabled/*; }\n\n\
# configuration file /etc/nginx/sites-enabled/hook:\nserver {\n  listen 80;\n  server_name _ hooks.example.org;\n  location ~ \"^/hooks/(?<n>[a-z]{1,64})/?$\" {\n    include snippets/dh.conf;\n    fastcgi_param PATH_INFO /$n;\n  }\n  location = /hooks/ { include snippets/dh.conf; } # comment ; {\n  location / { root /var/www; }\n}\n\n\
# configuration file /etc/nginx/snippets/dh.conf:\nfastcgi_param SCRIPT_FILENAME /usr/bin/deploy-hook;\nfastcgi_pass unix:/run/x.sock;\n";

    #[test]
    fn a_dumped_config_yields_the_locations_that_run_us() {
        let p = parse(DUMP);
        let e = &p.entries;
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].path_info && !e[1].path_info);
        assert_eq!(e[0].program, "/usr/bin/deploy-hook");
        assert_eq!(e[1].socket.as_deref(), Some("/run/x.sock"));
        assert!(e[0].name.contains("^/hooks/"));
        assert_eq!(e[0].file, "/etc/nginx/sites-enabled/hook");
        assert_eq!(p.vhosts.len(), 1);
        let v = &p.vhosts[0];
        assert_eq!(
            (v.http, v.https, v.host()),
            (true, false, None),
            "_ and an example name name no host"
        );
        let mut v = v.clone();
        v.names.push("docs.test-site.org".into());
        assert_eq!(v.host(), Some("docs.test-site.org"));
        assert_eq!(v.locations.len(), 3);
    }

    #[test]
    fn a_url_goes_where_nginx_sends_it() {
        let p = parse(DUMP);
        let v = &p.vhosts[0];
        assert_eq!(route(v, "/hooks/docs"), Route::To(0));
        assert_eq!(route(v, "/hooks/docs/"), Route::To(0));
        assert_eq!(route(v, "/hooks/"), Route::To(1));
        assert_eq!(route(v, "/hooks/Docs"), Route::To(2), "the regex is case-sensitive");
        let mut v = v.clone();
        v.locations[0].how = Match::Regex { ci: true };
        assert_eq!(route(&v, "/hooks/Docs"), Route::To(0));
        // A prefix location for the hooks, as an admin writes one: reached when no regex
        // matches, never when `^~` says so.
        v.locations.push(Location {
            how: Match::Prefix,
            pattern: "/hooks/".into(),
            entry: None,
        });
        assert_eq!(route(&v, "/hooks/a.b"), Route::To(3));
        v.locations[3].how = Match::PrefixStop;
        assert_eq!(route(&v, "/hooks/docs"), Route::To(3));
        v.locations.clear();
        assert_eq!(route(&v, "/hooks/docs"), Route::Nowhere);
    }

    #[test]
    fn quoted_words_keep_a_regexs_backslashes() {
        let t = tokens(r#"location ~ "^/a/(\w+)\"$" { x 'it\'s'; }"#);
        assert_eq!(t, vec!["location", "~", r#"^/a/(\w+)"$"#, "{", "x", "it's", ";", "}"]);
    }

    #[test]
    fn globs_match_like_nginx_includes() {
        assert!(glob_match("/etc/nginx/sites-enabled/*", "/etc/nginx/sites-enabled/a"));
        assert!(!glob_match("/etc/nginx/conf.d/*.conf", "/etc/nginx/conf.d/a.txt"));
    }
}
