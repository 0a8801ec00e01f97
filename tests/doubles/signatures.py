#!/usr/bin/env python3
"""Verifiers of the DingTalk and Feishu custom-robot signatures, written from the vendors'
documented algorithms (their doc pages give the algorithm in words and a Python sample):

DingTalk (open.dingtalk.com, "自定义机器人安全设置 / 加签"):
  string_to_sign = timestamp + "\n" + secret          (timestamp: ms, as sent)
  sign = urlEncode(base64(HmacSHA256(key=secret, msg=string_to_sign)))   UTF-8
  sent as query parameters: ...&timestamp=<ms>&sign=<sign>; timestamp within 1 hour.
Feishu/Lark (open.feishu.cn, "自定义机器人使用指南 / 签名校验"):
  key = timestamp + "\n" + secret                      (timestamp: s, as sent)
  sign = base64(HmacSHA256(key=key, msg=""))           (the message is EMPTY)
  sent in the JSON body: {"timestamp": "<s>", "sign": "<sign>", "msg_type": ...};
  timestamp within 1 hour; a mismatch answers HTTP 200 {"code":19021,"msg":"sign match
  fail or timestamp is not within one hour from current time"}.

No vendor publishes a fixed test vector (their samples use the current time), so the
vectors below were computed here twice, by this file and independently by the openssl
CLI (see cross_check()), and are pinned for the Rust unit tests.

Run: signatures.py            -> self test + openssl cross-check
"""
import base64
import hashlib
import hmac
import subprocess
import time
import urllib.parse

HOUR_MS = 3600 * 1000


def dingtalk_expected(secret: str, timestamp: str) -> str:
    """The base64 signature, NOT url-encoded (a query parser hands us the decoded value)."""
    mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def dingtalk_verify(query: str, secret: str, now_ms: int | None = None) -> tuple[bool, str]:
    """query: the raw query string of the POST (after '?'). Returns (ok, reason)."""
    q = urllib.parse.parse_qs(query, keep_blank_values=True)
    ts, sign = q.get("timestamp", [None])[0], q.get("sign", [None])[0]
    if not ts or not sign:
        return False, "missing timestamp or sign"
    if not q.get("access_token", [""])[0]:
        return False, "missing access_token"
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not ts.isdigit() or abs(now_ms - int(ts)) > HOUR_MS:
        return False, "timestamp not within one hour"
    # parse_qs decodes %2B to '+' but also a raw '+' to ' ': a client that does not
    # url-encode the base64 fails here, as it would at DingTalk.
    ok = hmac.compare_digest(sign, dingtalk_expected(secret, ts))
    return ok, "ok" if ok else "sign not match"


def feishu_expected(secret: str, timestamp: str) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def feishu_verify(body: dict, secret: str, now_s: int | None = None) -> tuple[bool, str]:
    ts, sign = body.get("timestamp"), body.get("sign")
    if ts is None or sign is None:
        return False, "missing timestamp or sign"
    ts = str(ts)
    now_s = int(time.time()) if now_s is None else now_s
    if not ts.isdigit() or abs(now_s - int(ts)) > 3600:
        return False, "timestamp not within one hour"
    ok = isinstance(sign, str) and hmac.compare_digest(sign, feishu_expected(secret, ts))
    return ok, "ok" if ok else "sign match fail"


# Pinned vectors (computed by this file and by openssl; see cross_check()).
DINGTALK_VECTOR = ("SECdeploy-hook-test-0123456789abcdef", "1700000000000")
FEISHU_VECTOR = ("deploy-hook-feishu-test-secret", "1700000000")


def cross_check() -> None:
    secret, ts = DINGTALK_VECTOR
    ours = dingtalk_expected(secret, ts)
    theirs = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", secret, "-binary"],
        input=f"{ts}\n{secret}".encode(), capture_output=True, check=True).stdout
    assert ours == base64.b64encode(theirs).decode(), (ours, theirs)
    print(f"dingtalk secret={secret!r} timestamp={ts} sign={ours} urlencoded={urllib.parse.quote_plus(ours)}")

    secret, ts = FEISHU_VECTOR
    ours = feishu_expected(secret, ts)
    hexkey = f"{ts}\n{secret}".encode().hex()
    theirs = subprocess.run(
        ["openssl", "dgst", "-sha256", "-mac", "HMAC", "-macopt", f"hexkey:{hexkey}", "-binary"],
        input=b"", capture_output=True, check=True).stdout
    assert ours == base64.b64encode(theirs).decode(), (ours, theirs)
    print(f"feishu   secret={secret!r} timestamp={ts} sign={ours}")


def selftest() -> None:
    secret, ts = DINGTALK_VECTOR
    sign = dingtalk_expected(secret, ts)
    now = int(ts) + 1000
    good = f"access_token=abc&timestamp={ts}&sign={urllib.parse.quote_plus(sign)}"
    assert dingtalk_verify(good, secret, now) == (True, "ok")
    assert dingtalk_verify(good, secret + "x", now)[0] is False
    assert dingtalk_verify(good, secret, now + 2 * HOUR_MS)[1] == "timestamp not within one hour"
    if "+" in sign:  # a client that forgot to url-encode
        assert dingtalk_verify(f"access_token=abc&timestamp={ts}&sign={sign}", secret, now)[0] is False
    secret, ts = FEISHU_VECTOR
    body = {"timestamp": ts, "sign": feishu_expected(secret, ts), "msg_type": "text"}
    assert feishu_verify(body, secret, int(ts) + 5) == (True, "ok")
    assert feishu_verify({**body, "timestamp": str(int(ts) + 1)}, secret, int(ts) + 5)[0] is False
    assert feishu_verify(body, secret, int(ts) + 7200)[1] == "timestamp not within one hour"
    # The mistake the Feishu docs' readers make: DingTalk's algorithm (key=secret, msg=ts\nsecret)
    wrong = base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()).decode()
    assert feishu_verify({**body, "sign": wrong}, secret, int(ts) + 5)[0] is False
    print("selftest ok")


if __name__ == "__main__":
    cross_check()
    selftest()
