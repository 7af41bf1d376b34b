#!/usr/bin/env python3
"""Writes the seed corpus checked in under fuzz/corpus/<target>/: run from the repository root.

The LLSD decoder targets (xml, binary, notation, roundtrip) are seeded from the LLSD test vectors;
the others from small hand-written bodies of the shapes each parser sees (login requests and replies,
seeds, event-queue answers, captures, filters). Re-running it rewrites the same files."""
import base64, json, os, struct, subprocess

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
corpus = os.path.join(root, "fuzz/corpus")


def put(target, name, data):
    out = os.path.join(corpus, target)
    os.makedirs(out, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


vectors = json.load(open(os.path.join(root, "tests/data/llsd/llsd-curated.json")))["vectors"]
for target in ("xml", "binary", "notation", "roundtrip", "transcode"):
    for i, case in enumerate(vectors):
        for fmt in ("xml", "binary", "notation"):
            if fmt in case and (target == fmt or target in ("roundtrip", "transcode")):
                put(target, f"{i}-{fmt}", base64.b64decode(case[fmt]))


def member(name, value):
    return f"<member><name>{name}</name><value>{value}</value></member>"


def rpc(kind, members):
    body = "".join(member(n, v) for n, v in members)
    if kind == "call":
        return ("<?xml version=\"1.0\"?><methodCall><methodName>login_to_simulator</methodName>"
                f"<params><param><value><struct>{body}</struct></value></param></params></methodCall>")
    return ("<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>"
            f"{body}</struct></value></param></params></methodResponse>")


uuid = "11111111-2222-3333-4444-555555555555"
login_request = rpc("call", [
    ("first", "<string>Ann</string>"), ("last", "<string>Resident</string>"),
    ("passwd", "<string>$1$5f4dcc3b5aa765d61d8327deb882cf99</string>"),
    ("start", "<string>last</string>"), ("token", "<string>123456</string>"),
    ("mfa_hash", "<string>abcdef</string>"), ("channel", "<string>Second Life Release</string>"),
])
login_reply = rpc("response", [
    ("login", "<string>true</string>"), ("agent_id", f"<string>{uuid}</string>"),
    ("session_id", f"<string>{uuid}</string>"), ("secure_session_id", f"<string>{uuid}</string>"),
    ("circuit_code", "<i4>123456</i4>"), ("sim_ip", "<string>127.0.0.1</string>"),
    ("sim_port", "<i4>13000</i4>"), ("region_x", "<i4>256000</i4>"), ("region_y", "<i4>256000</i4>"),
    ("seed_capability", "<string>https://sim.example:12043/cap/abc</string>"),
    ("openid_token", "<string>tok</string>"), ("openid_url", "<string>https://id.example/</string>"),
])
login_fault = ("<?xml version=\"1.0\"?><methodResponse><fault><value><struct>"
               + member("faultCode", "<int>4</int>") + member("faultString", "<string>no</string>")
               + "</struct></value></fault></methodResponse>")
for name, body in [("request", login_request), ("reply", login_reply), ("fault", login_fault)]:
    put("login", name, body)
    put("secrets", f"login-{name}", body)

seed_xml = ("<?xml version=\"1.0\"?><llsd><map>"
            "<key>EventQueueGet</key><string>https://sim.example:12043/cap/eq</string>"
            "<key>FetchInventory2</key><uri>https://sim.example:12043/cap/inv</uri>"
            "<key>UploadBakedTexture</key><string>https://sim.example:12043/cap/up</string>"
            "</map></llsd>")
seed_request = ("<?xml version=\"1.0\"?><llsd><array><string>EventQueueGet</string>"
                "<string>FetchInventory2</string></array></llsd>")
seed_notation = "{'EventQueueGet':'https://sim.example:12043/cap/eq','Seed':l\"https://x/\"}"


def binary_map(entries):
    out = b"{" + struct.pack(">I", len(entries))
    for k, v in entries:
        out += b"k" + struct.pack(">I", len(k)) + k.encode() + v
    return out + b"}"


def bstr(s, tag=b"s"):
    return tag + struct.pack(">I", len(s)) + s.encode()


seed_binary = binary_map([("EventQueueGet", bstr("https://sim.example:12043/cap/eq")),
                          ("GetTexture", bstr("https://sim.example:12043/cap/tex", b"l"))])
uploader = ("<llsd><map><key>state</key><string>upload</string>"
            "<key>uploader</key><string>https://sim.example:12043/cap/upl</string></map></llsd>")
for name, body in [("xml", seed_xml), ("request", seed_request), ("notation", seed_notation),
                   ("binary", seed_binary), ("uploader", uploader)]:
    put("seed", name, body)

events = ("<?xml version=\"1.0\"?><llsd><map><key>id</key><integer>3</integer><key>events</key><array>"
          "<map><key>message</key><string>EstablishAgentCommunication</string><key>body</key><map>"
          "<key>seed-capability</key><string>https://sim2.example:12043/cap/seed2</string>"
          "<key>sim-ip-and-port</key><string>127.0.0.2:13001</string></map></map>"
          "<map><key>message</key><string>TeleportFinish</string><key>body</key><map><key>Info</key>"
          "<array><map><key>SeedCapability</key><string>https://sim3.example/cap/s3</string>"
          "<key>RegionHandle</key><binary encoding=\"base64\">AAPoAAAD6AA=</binary></map></array>"
          "</map></map></array></map></llsd>")
poll = "<llsd><map><key>ack</key><integer>2</integer><key>done</key><boolean>false</boolean></map></llsd>"
for name, body in [("events", events), ("poll", poll), ("events-notation",
                   "{'id':i1,'events':[{'message':'EnableSimulator','body':{}}]}")]:
    put("event_queue", name, body)

secrets_binary = binary_map([("secure_session_id", b"u" + bytes(range(16))),
                             ("circuit_code", b"i" + struct.pack(">i", 42)),
                             ("passwd", bstr("$1$abc")), ("note", bstr("'passwd':'x'"))])
put("secrets", "binary", secrets_binary)
put("secrets", "notation", "{'session_id':u" + uuid + ",'token':s(6)\"123456\",'password':b64\"cHc=\"}")
put("secrets", "xml", "<llsd><map><key>password</key><string>pw</string><key>voice_credentials</key>"
    "<map><key>channel_credentials</key><string>c</string></map></map></llsd>")

capture = open(os.path.join(root, "tests/data/captures/v1.jsonl"), "rb").read()
put("capture_reader", "v1-plain", b"\x00" + capture)
zst = subprocess.run(["zstd", "-q", "-c"], input=capture, capture_output=True, check=True).stdout
put("capture_reader", "v1-zstd", b"\x01" + zst)
put("capture_reader", "torn", b"\x00" + capture[: len(capture) // 2])
# Version 2: record lines followed by raw body bytes ({"raw": LEN}).
v2 = open(os.path.join(root, "tests/data/captures/v2.jsonl"), "rb").read()
put("capture_reader", "v2-plain", b"\x00" + v2)
zst2 = subprocess.run(["zstd", "-q", "-c"], input=v2, capture_output=True, check=True).stdout
put("capture_reader", "v2-zstd", b"\x01" + zst2)
raw_at = v2.index(b'{"raw":')
put("capture_reader", "v2-torn-in-bodies", b"\x00" + v2[: v2.index(b"\n", raw_at) + 3])
header = v2[: v2.index(b"\n") + 1]
record = (b'{"record":{"id":1,"kind":"http","state":"done","started_us":1,"response":{"status":200,'
          b'"version":"HTTP/1.1","headers":[],"body":{"data":{"raw":%d},"size":4}}}}\n')
put("capture_reader", "v2-long-raw", b"\x00" + header + record % 18446744073709551615 + b"abcd\n")
put("capture_reader", "v2-raw-mismatch", b"\x00" + header + record % 2 + b"abcd\n")

# capture_line: 8 bytes of choices and numbers, then strings separated by 0xFE (never UTF-8).
every_part = struct.pack("<Q", 0xFFFF_FFFF_FFFF_FFFF)
plain_strings = b"\xfe".join([b"127.0.0.1:5000", b"GET", b"https://sim.example:12043/cap/abc",
                                b"HTTP/1.1", b"content-type", b"application/llsd+xml"])
put("capture_line", "plain", every_part + plain_strings)
put("capture_line", "odd", every_part + b"\xfe".join(
    [b'a"b\\c', b"\x00\x01\x08\t\n\x0c\r\x1f\x7f", "\u00e9\u4e2d\U0001f980\u2028".encode(),
     b"\xff\xc3", b"", b"x" * 40 + b"\x1f"]))
put("capture_line", "nothing-optional", struct.pack("<Q", 0) + b"x")

for i, expr in enumerate([
    "cap:EventQueueGet & status:5xx",
    "event:TeleportFinish body.Info[0].SimPort == 13005",
    "cap:Fetch* & body.folders[*].items[*].name ~ \"Object 1*\"",
    "kind:event | kind:login",
    "!(method:GET | host:*.amazonaws.com) & teleport",
    "req[\"any key\"].*[2] >= -1.5e3 | region:'Da Boom' | \"http://\"",
]):
    put("filter", f"expr-{i}", expr)

# The lean upstream client's answers (the first byte: odd for a HEAD request).
llsd_body = b"<llsd><map><key>id</key><integer>1</integer></map></llsd>"
for name, first, answer in [
    ("sized", 0, b"HTTP/1.1 200 OK\r\nContent-Type: application/llsd+xml\r\nContent-Length: %d\r\n\r\n%s"
        % (len(llsd_body), llsd_body)),
    ("chunked", 0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"),
    ("until-close", 0, b"HTTP/1.0 502 Bad Gateway\r\nConnection: close\r\n\r\nupstream idle"),
    ("informational", 0, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    ("head-request", 1, b"HTTP/1.1 200 OK\r\nContent-Length: 999999\r\n\r\n"),
    ("both-framings", 0, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"),
]:
    put("upstream_response", name, bytes([first]) + answer)

# The lean upstream client's requests, as the viewer sent them: method, what follows `http://`, the
# body, then header names and values, separated by NUL.
for name, fields in [
    ("event-poll", [b"POST", b"sim.example:12043/cap/eq", b"<llsd><map><key>ack</key><integer>4</integer>"
        b"<key>done</key><boolean>0</boolean></map></llsd>", b"Content-Type", b"application/llsd+xml",
        b"Accept", b"application/llsd+xml", b"X-SecondLife-UDP-Listen-Port", b"13001"]),
    ("grid-info", [b"GET", b"grid.example:8002/get_grid_info", b"", b"User-Agent", b"capscope"]),
    ("query-userinfo-framing", [b"DELETE", b"user:pw@sim.example?x=1&y", b"", b"Host", b"sim.example",
        b"Content-Length", b"7", b"Transfer-Encoding", b"chunked", b"Connection", b"close",
        b"X-Multi", b" spaced  value ", b"x-multi", b"\x80obs-text"]),
    ("extension-method", [b"PROPFIND", b"127.0.0.1:9000/a/b%20c/?q=%7E#frag", b"{}", b"Depth", b"1"]),
]:
    put("upstream_request", name, b"\0".join(fields))

# The proxy front's request heads (the first byte: odd for a 512-byte head limit).
for name, first, head in [
    ("poll", 0, b"POST /cap/0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"Content-Type: application/llsd+xml\r\nContent-Length: 93\r\n\r\n<?xml version=\"1.0\" ?>"),
    ("expect-close", 0, b"POST /cap/x HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close\r\n"
        b"Content-Length: 5\r\n\r\nhello"),
    ("http-1-0", 0, b"GET http://sim.example:12043/cap/y HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
    ("chunked", 0, b"POST /cap/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("two-lengths", 0, b"POST /cap/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
    ("connect", 0, b"CONNECT sim.example:443 HTTP/1.1\r\nHost: sim.example:443\r\n\r\n"),
    ("over-limit", 1, b"GET / HTTP/1.1\r\nX-Big: " + b"x" * 600 + b"\r\n\r\n"),
    ("partial", 1, b"POST /cap/x HTTP/1.1\r\nHost: a"),
]:
    put("front_head", name, bytes([first]) + head)
