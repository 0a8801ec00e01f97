#!/usr/bin/env python3
"""Test doubles for the forge APIs and chat robots deploy-hook reports to.

One process, one loopback port, every service under its own path prefix:

  /github/repos/{o}/{r}/statuses/{sha}        POST  (api = http://127.0.0.1:P/github)
  /github/repos/{o}/{r}                        GET   permissions for `check`
  /gitea/api/v1/repos/{o}/{r}/statuses/{sha}   POST  (api = http://127.0.0.1:P/gitea/api/v1)
  /gitea/api/v1/repos/{o}/{r}                  GET
  /gitlab/api/v4/projects/{id}/statuses/{sha}  POST  (api = http://127.0.0.1:P/gitlab/api/v4)
  /gitlab/api/v4/projects/{id}                 GET
  /gitee/api/v5/repos/{o}/{r}/commits/{sha}/comments  POST (api = http://127.0.0.1:P/gitee/api/v5)
  /gitee/api/v5/repos/{o}/{r}                  GET
  /dingtalk/robot/send?access_token=..         POST  markdown/text, signed when a secret is set
  /feishu/open-apis/bot/v2/hook/{token}        POST  text/post/interactive, signed when set
  /wecom/cgi-bin/webhook/send?key=..           POST  markdown/text
  /slack/services/{T}/{B}/{X}                  POST  text and/or blocks
  /webhook/{anything}                          POST  our JSON (version 1), signed when a secret is set
  /hang/{anything}                             accepts, reads the request, never answers
  /echo401/{anything}                          401, its message echoing the Authorization header
                                               (APIs that say which credentials they refused)
  /redirect/{anything}                         302 to https://api.example.com/{anything}
  /flaky/{kind}/...                            the first `flaky` requests get 503, then as {kind}

Each service checks method, path, headers and JSON as its documentation says and answers
the way the real one does (including DingTalk/Feishu/WeCom's "HTTP 200 with an error
code"). Every request is appended to --record as one JSON line (header names lowercased: ureq
sends them lowercase, curl capitalised; HTTP says case does not matter):
  {"service", "method", "path", "query", "headers", "body", "ok", "reason", "status"}
Secrets are the test's own, so recording them is fine (the binary under test must not
log them; the test checks the binary's logs, not this file).

Start:  doubles.py --config CONF.json --record REQS.jsonl --ready READY
        READY is written (atomically, by rename) with {"port": P, "blackhole": B} once
        the server listens; the test polls for it with a deadline instead of sleeping.
        B is a second port whose listen backlog is full: a connect() to it never
        completes, for connect-timeout tests.
Stop:   SIGTERM (or the test's process-group kill); hanging handlers are daemon threads.

CONF.json (all keys optional):
  {"github": {"token": "T", "repo": "owner/name", "scopes": "repo:status", "push": true},
   "gitea":  {"token": "T", "repo": "owner/name", "push": true},
   "gitlab": {"token": "T", "project": "group/project", "id": 17, "access_level": 30,
              "scopes": ["api"]},
   "gitee":  {"token": "T", "repo": "owner/name", "push": true},
   "dingtalk": {"access_token": "A", "secret": "SEC...", "keyword": null},
   "feishu": {"hook": "H", "secret": "S", "keyword": null},
   "wecom": {"key": "K"}, "slack": {"path": "T000/B000/XXXX"},
   "webhook": {"secret": "S"},
   "flaky": 2}

The signatures are checked by signatures.py, written from the vendors' documents (and, for
the webhook, from GitHub's X-Hub-Signature-256 scheme that docs/report.md names), not from
deploy-hook's code.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signatures import dingtalk_verify, feishu_verify  # noqa: E402

CONF: dict = {}
RECORD_LOCK = threading.Lock()
RECORD_PATH = ""
GITLAB_STATES: dict = {}  # (project, sha, name) -> "pending" | "running" (only unfinished ones)
STOP = threading.Event()
FLAKY_LEFT: dict = {}
HEX40 = re.compile(r"^[0-9a-f]{40}$")


def record(entry: dict) -> None:
    line = json.dumps(entry, ensure_ascii=False, sort_keys=True)
    with RECORD_LOCK, open(RECORD_PATH, "a", encoding="utf-8") as f:
        f.write(line + "\n")


class Reply(Exception):
    def __init__(self, status: int, body, reason: str, ok: bool = False, headers=None):
        self.status, self.body, self.reason, self.ok = status, body, reason, ok
        self.headers = headers or {}


def need_json(h) -> dict:
    ctype = h.headers.get("Content-Type", "")
    if not ctype.lower().startswith("application/json"):
        raise Reply(415, {"message": "Unsupported Media Type"}, f"content-type {ctype!r}")
    try:
        body = json.loads(h.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Reply(400, {"message": "Problems parsing JSON"}, "body is not JSON")
    if not isinstance(body, dict):
        raise Reply(400, {"message": "Problems parsing JSON"}, "body is not an object")
    return body


def bearer(h, scheme_ok=("token", "bearer")) -> str | None:
    v = h.headers.get("Authorization", "")
    parts = v.split(" ", 1)
    if len(parts) == 2 and parts[0].lower() in scheme_ok:
        return parts[1].strip()
    return None


# ---------------------------------------------------------------- forges ----
def github(h, rest: str):
    c = CONF.get("github", {})
    if not h.headers.get("User-Agent"):
        # GitHub: "Request forbidden by administrative rules. Please make sure your request
        # has a User-Agent header"
        raise Reply(403, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).", "no User-Agent")
    if bearer(h) != c.get("token"):
        raise Reply(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}, "bad token")
    scopes = {"X-OAuth-Scopes": c.get("scopes", "repo:status")}
    m = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/statuses/([^/]+))?", rest)
    if not m or f"{m[1]}/{m[2]}" != c.get("repo"):
        raise Reply(404, {"message": "Not Found"}, "unknown repo", headers=scopes)
    if h.command == "GET" and not m[3]:
        perms = {"admin": False, "maintain": False, "push": c.get("push", True), "triage": True, "pull": True}
        raise Reply(200, {"full_name": c["repo"], "permissions": perms}, "repo read", ok=True, headers=scopes)
    if h.command != "POST" or not m[3]:
        raise Reply(404, {"message": "Not Found"}, "no such route")
    if not c.get("push", True):
        raise Reply(404, {"message": "Not Found"}, "no push access (GitHub answers 404)")
    body = need_json(h)
    return forge_status(h, body, m[4], {"pending", "success", "failure", "error"}, 140, "github", scopes)


def forge_status(h, body, sha, states, desc_max, service, headers):
    errs = []
    if not HEX40.match(sha):
        errs.append({"resource": "Status", "field": "sha", "code": "invalid"})
    if body.get("state") not in states:
        errs.append({"resource": "Status", "field": "state", "code": "custom", "message": "state is not included in the list"})
    d = body.get("description")
    if d is not None and (not isinstance(d, str) or (desc_max and len(d) > desc_max)):
        errs.append({"resource": "Status", "code": "custom", "field": "description",
                     "message": f"description is too long (maximum is {desc_max} characters)"})
    t = body.get("target_url")
    if t is not None and not re.match(r"^https?://", str(t)):
        errs.append({"resource": "Status", "field": "target_url", "code": "custom", "message": "target_url must use http(s) scheme"})
    if not isinstance(body.get("context", "default"), str):
        errs.append({"resource": "Status", "field": "context", "code": "invalid"})
    extra = set(body) - {"state", "target_url", "description", "context"}
    if errs:
        raise Reply(422, {"message": "Validation Failed", "errors": errs}, json.dumps(errs))
    raise Reply(201, {"state": body["state"], "context": body.get("context", "default"),
                      "description": d, "target_url": t, "sha": sha},
                "status created" + (f" (ignored keys {sorted(extra)})" if extra else ""), ok=True, headers=headers)


def gitea(h, rest: str):
    c = CONF.get("gitea", {})
    tok = bearer(h)
    if tok is None:  # Gitea also takes ?token= / ?access_token=, which we must not use (logs)
        raise Reply(401, {"message": "token is required"}, "no Authorization header")
    if tok != c.get("token"):
        raise Reply(401, {"message": "user does not exist [uid: 0, name: ]"}, "bad token")
    m = re.fullmatch(r"/api/v1/repos/([^/]+)/([^/]+)(/statuses/([^/]+))?", rest)
    if not m or f"{m[1]}/{m[2]}" != c.get("repo"):
        raise Reply(404, {"message": "The target couldn't be found."}, "unknown repo")
    if h.command == "GET" and not m[3]:
        raise Reply(200, {"full_name": c["repo"], "permissions": {"admin": False, "push": c.get("push", True), "pull": True}}, "repo read", ok=True)
    if h.command != "POST" or not m[3]:
        raise Reply(405, {"message": "Method Not Allowed"}, "no such route")
    if not c.get("push", True):
        raise Reply(403, {"message": "user should have write permission"}, "no write access")
    body = need_json(h)
    return forge_status(h, body, m[4], {"pending", "success", "error", "failure", "warning"}, 0, "gitea", {})


def gitlab(h, rest: str):
    c = CONF.get("gitlab", {})
    tok = h.headers.get("PRIVATE-TOKEN")
    if tok != c.get("token"):
        raise Reply(401, {"message": "401 Unauthorized"}, "bad or missing PRIVATE-TOKEN")
    # h.path is the raw request target: the project path must arrive URL-encoded.
    m = re.fullmatch(r"/api/v4/projects/([^/]+)(/statuses/([^/?]+))?", rest)
    if not m:
        raise Reply(404, {"message": "404 Not Found"}, "no such route (is the project path URL-encoded? %2F)")
    pid = m[1]
    if pid not in (str(c.get("id")), urllib.parse.quote(c.get("project", ""), safe="")):
        raise Reply(404, {"message": "404 Project Not Found"}, f"unknown project {pid!r}")
    if h.command == "GET" and not m[2]:
        perms = {"project_access": {"access_level": c.get("access_level", 30), "notification_level": 3}, "group_access": None}
        raise Reply(200, {"id": c.get("id"), "path_with_namespace": c.get("project"), "permissions": perms}, "project read", ok=True)
    if h.command != "POST" or not m[2]:
        raise Reply(405, {"message": "405 Method Not Allowed"}, "no such route")
    if "api" not in c.get("scopes", ["api"]):
        raise Reply(403, {"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": "api"}, "token lacks api scope")
    if c.get("access_level", 30) < 30:
        raise Reply(403, {"message": "403 Forbidden"}, "needs Developer (30) or more")
    body = need_json(h)  # GitLab also takes query/form parameters; JSON is what we send
    sha, state = m[3], body.get("state")
    if not HEX40.match(sha):
        raise Reply(404, {"message": "404 Commit Not Found"}, "bad sha")
    if state not in ("pending", "running", "success", "failed", "canceled"):
        raise Reply(400, {"error": "state does not have a valid value"}, "bad state")
    name = body.get("name") or body.get("context") or "default"
    key = (pid, sha, name)
    cur = GITLAB_STATES.get(key)  # only pending/running ones are found, as GitLab does
    event = {"pending": "enqueue", "running": "run", "success": "success", "failed": "drop", "canceled": "cancel"}[state]
    allowed = {  # from the current unfinished state (None = a new status is created)
        None: {"pending", "running", "success", "failed", "canceled"},
        "pending": {"running", "success", "failed", "canceled"},
        "running": {"success", "failed", "canceled"},
    }[cur]
    if state not in allowed:
        msg = f"Cannot transition status via :{event} from :{cur} (Reason(s): Status cannot transition via \"{event}\")"
        raise Reply(400, {"message": msg}, msg)
    if state in ("pending", "running"):
        GITLAB_STATES[key] = state
    else:
        GITLAB_STATES.pop(key, None)
    d = body.get("description")
    if d is not None and len(d) > 255:
        raise Reply(400, {"message": {"description": ["is too long (maximum is 255 characters)"]}}, "description > 255")
    raise Reply(201, {"sha": sha, "status": state, "name": name, "target_url": body.get("target_url"), "description": d}, "status created", ok=True)


def gitee(h, rest: str):
    c = CONF.get("gitee", {})
    m = re.fullmatch(r"/api/v5/repos/([^/]+)/([^/]+)(/commits/([^/]+)/comments)?", rest)
    if h.command == "GET":
        tok = h.query.get("access_token", [None])[0] or bearer(h)
    else:
        body = need_json(h)
        tok = body.get("access_token") or bearer(h)
    if tok != c.get("token"):
        raise Reply(401, {"message": "401 Unauthorized: Access token does not exist"}, "bad token")
    if not m or f"{m[1]}/{m[2]}" != c.get("repo"):
        raise Reply(404, {"message": "Not Found Project"}, "unknown repo")
    if h.command == "GET" and not m[3]:
        raise Reply(200, {"full_name": c["repo"], "permission": {"pull": True, "push": c.get("push", True), "admin": False}}, "repo read", ok=True)
    if h.command != "POST" or not m[3]:
        raise Reply(405, {"message": "405 Not Allowed"}, "no such route")
    if not HEX40.match(m[4]):
        raise Reply(404, {"message": "Not Found Commit"}, "bad sha")
    if not isinstance(body.get("body"), str) or not body["body"].strip():
        raise Reply(400, {"message": "body is missing"}, "no body")
    raise Reply(201, {"id": 1, "body": body["body"], "commit_id": m[4]}, "comment created", ok=True)


# ---------------------------------------------------------------- robots ----
def dingtalk(h, rest: str):
    c = CONF.get("dingtalk", {})
    if rest != "/robot/send" or h.command != "POST":
        raise Reply(404, "", "no such route")
    if h.query.get("access_token", [""])[0] != c.get("access_token"):
        raise Reply(200, {"errcode": 300001, "errmsg": "token is not exist"}, "bad access_token")
    if c.get("secret"):
        ok, why = dingtalk_verify(h.raw_query, c["secret"])
        if not ok:
            raise Reply(200, {"errcode": 310000, "errmsg": f"{why}, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"}, why)
    body = need_json(h)
    if len(h.body) > 20000:
        raise Reply(200, {"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"}, "too long")
    mt = body.get("msgtype")
    if mt == "markdown":
        md = body.get("markdown") or {}
        if not isinstance(md.get("title"), str) or not isinstance(md.get("text"), str):
            raise Reply(200, {"errcode": 40035, "errmsg": "缺少参数 markdown.title/text"}, "markdown needs title and text")
        content = md["title"] + md["text"]
    elif mt == "text":
        content = (body.get("text") or {}).get("content")
        if not isinstance(content, str):
            raise Reply(200, {"errcode": 40035, "errmsg": "缺少参数 text.content"}, "text needs content")
    else:
        raise Reply(200, {"errcode": 40035, "errmsg": "不合法的参数 msgtype"}, f"msgtype {mt!r}")
    if c.get("keyword") and c["keyword"] not in content:
        raise Reply(200, {"errcode": 310000, "errmsg": "keywords not in content"}, "keyword missing")
    raise Reply(200, {"errcode": 0, "errmsg": "ok"}, "sent", ok=True)


def feishu(h, rest: str):
    c = CONF.get("feishu", {})
    m = re.fullmatch(r"/open-apis/bot/v2/hook/([^/]+)", rest)
    if not m or h.command != "POST":
        raise Reply(404, "404 page not found", "no such route")
    if m[1] != c.get("hook"):
        raise Reply(200, {"code": 19001, "msg": "param invalid: incoming webhook access token invalid", "data": {}}, "bad hook token")
    try:
        body = need_json(h)
    except Reply:
        raise Reply(200, {"code": 9499, "msg": "Bad Request", "data": {}}, "not JSON")
    if c.get("secret"):
        ok, why = feishu_verify(body, c["secret"])
        if not ok:
            raise Reply(200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time", "data": {}}, why)
    if len(h.body) > 20 * 1024:
        raise Reply(200, {"code": 9499, "msg": "request body too large", "data": {}}, "body > 20 KB")
    mt = body.get("msg_type")
    if mt == "text":
        ok = isinstance((body.get("content") or {}).get("text"), str)
    elif mt == "post":
        ok = isinstance((body.get("content") or {}).get("post"), dict)
    elif mt == "interactive":
        ok = isinstance(body.get("card"), dict)
    else:
        ok = False
    if not ok:
        raise Reply(200, {"code": 9499, "msg": "Bad Request", "data": {}}, f"msg_type {mt!r} with the wrong content")
    if c.get("keyword") and c["keyword"] not in json.dumps(body, ensure_ascii=False):
        raise Reply(200, {"code": 19024, "msg": "Key Words Not Found", "data": {}}, "keyword missing")
    raise Reply(200, {"code": 0, "msg": "success", "data": {}, "StatusCode": 0, "StatusMessage": "success"}, "sent", ok=True)


def wecom(h, rest: str):
    c = CONF.get("wecom", {})
    if rest != "/cgi-bin/webhook/send" or h.command != "POST":
        raise Reply(404, "", "no such route")
    if h.query.get("key", [""])[0] != c.get("key"):
        raise Reply(200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [x], from ip: 127.0.0.1"}, "bad key")
    body = need_json(h)
    mt = body.get("msgtype")
    if mt == "markdown":
        content = (body.get("markdown") or {}).get("content")
        limit, field = 4096, "markdown.content"
    elif mt == "text":
        content = (body.get("text") or {}).get("content")
        limit, field = 2048, "text.content"
    else:
        raise Reply(200, {"errcode": 40008, "errmsg": "invalid message type"}, f"msgtype {mt!r}")
    if not isinstance(content, str) or not content:
        raise Reply(200, {"errcode": 44004, "errmsg": "empty content"}, "empty content")
    if len(content.encode("utf-8")) > limit:
        raise Reply(200, {"errcode": 40058, "errmsg": f"{field} exceed max length {limit}. invalid Request Parameter"}, f"{field} > {limit} bytes")
    raise Reply(200, {"errcode": 0, "errmsg": "ok"}, "sent", ok=True)


def slack(h, rest: str):
    c = CONF.get("slack", {})
    if h.command != "POST" or rest != "/services/" + c.get("path", ""):
        raise Reply(404, "no_service", "no such webhook")
    if not h.headers.get("Content-Type", "").lower().startswith("application/json"):
        raise Reply(400, "invalid_payload", "content-type is not JSON")
    try:
        body = json.loads(h.body)
    except json.JSONDecodeError:
        raise Reply(400, "invalid_payload", "not JSON")
    text, blocks = body.get("text"), body.get("blocks")
    if not (isinstance(text, str) and text) and not (isinstance(blocks, list) and blocks):
        raise Reply(400, "no_text", "neither text nor blocks")
    if isinstance(blocks, list):
        for b in blocks:
            t = ((b or {}).get("text") or {}).get("text", "")
            if b.get("type") == "section" and len(t) > 3000:
                raise Reply(400, "invalid_blocks", "section text > 3000 chars")
    raise Reply(200, "ok", "sent", ok=True)


def webhook(h, rest: str):
    c = CONF.get("webhook", {})
    if h.command != "POST":
        raise Reply(405, {"error": "POST only"}, "not a POST")
    if c.get("secret"):
        # GitHub's scheme: "sha256=" + hex HMAC-SHA256(secret, raw body).
        want = "sha256=" + hmac.new(c["secret"].encode(), h.body, hashlib.sha256).hexdigest()
        got = h.headers.get("X-Deploy-Hook-Signature-256", "")
        if not hmac.compare_digest(got, want):
            raise Reply(401, {"error": "bad signature"}, "signature does not verify")
    body = need_json(h)
    missing = [k for k in ("version", "event", "hook", "result", "build", "commit", "lines") if k not in body]
    if missing:
        raise Reply(400, {"error": f"missing {missing}"}, f"missing {missing}")
    if h.headers.get("X-Deploy-Hook-Event") != body.get("event"):
        raise Reply(400, {"error": "X-Deploy-Hook-Event differs from event"}, "event header")
    raise Reply(204, None, "accepted", ok=True)


def echo401(h, rest: str):
    raise Reply(401, {"message": f"invalid credentials: {h.headers.get('Authorization', '')}"}, "echoed")


def redirect(h, rest: str):
    raise Reply(302, "", "redirected", headers={"Location": f"https://api.example.com{rest}"})


SERVICES = {"echo401": echo401, "redirect": redirect, "github": github, "gitea": gitea, "gitlab": gitlab, "gitee": gitee, "dingtalk": dingtalk,
            "feishu": feishu, "wecom": wecom, "slack": slack, "webhook": webhook}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "double/1"

    def log_message(self, *a):  # quiet: the record file is the log
        pass

    def handle_any(self):
        raw_path, _, raw_query = self.path.partition("?")
        self.raw_query = raw_query
        self.query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        n = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(n) if n else b""
        parts = raw_path.split("/", 2)
        service = parts[1] if len(parts) > 1 else ""
        rest = "/" + parts[2] if len(parts) > 2 else "/"
        entry = {"service": service, "method": self.command, "path": raw_path, "query": self.query,
                 "headers": {k.lower(): v for k, v in self.headers.items()}, "time": time.time()}
        try:
            entry["body"] = json.loads(self.body) if self.body else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            entry["body"] = self.body.decode("utf-8", "replace")
        if service == "hang":
            entry.update(ok=False, reason="hanging", status=None)
            record(entry)
            STOP.wait()  # never answer; the client's timeout must end this
            return
        if service == "flaky":
            left = FLAKY_LEFT.setdefault(rest, CONF.get("flaky", 2))
            if left > 0:
                FLAKY_LEFT[rest] = left - 1
                r = Reply(503, {"message": "Service Unavailable"}, f"flaky ({left} left)")
                return self.answer(entry, r)
            service, _, rest2 = rest[1:].partition("/")
            rest = "/" + rest2
        fn = SERVICES.get(service)
        try:
            if fn is None:
                raise Reply(404, {"message": "unknown service"}, f"unknown service {service!r}")
            fn(self, rest)
            raise Reply(500, {"message": "double fell through"}, "bug in double")
        except Reply as r:
            self.answer(entry, r)

    def answer(self, entry, r: Reply):
        entry.update(ok=r.ok, reason=r.reason, status=r.status)
        record(entry)
        if r.body is None:
            data, ctype = b"", None
        elif isinstance(r.body, str):
            data, ctype = r.body.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(r.body, ensure_ascii=False).encode(), "application/json; charset=utf-8"
        self.send_response(r.status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in r.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main():
    global CONF, RECORD_PATH
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    with open(a.config, encoding="utf-8") as f:
        CONF = json.load(f)
    RECORD_PATH = a.record
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    # A port that never completes a connect(): backlog 0 (one slot) filled by ourselves.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(hole.getsockname())
        except BlockingIOError:
            pass
        fillers.append(s)
    tmp = a.ready + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"port": srv.server_address[1], "blackhole": hole.getsockname()[1], "pid": os.getpid()}, f)
    os.rename(tmp, a.ready)

    def stop(*_):
        STOP.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    srv.serve_forever()


if __name__ == "__main__":
    main()
