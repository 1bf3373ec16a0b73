#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (valid messages of every command)."""
import json, os, struct, sys, zlib

here = os.path.dirname(os.path.abspath(__file__))

def out(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def hdr(cmd, payload, flags=0, msg_id=7):
    return struct.pack("<HHIII", msg_id, cmd, 16 + len(payload), flags, 0) + payload

caps = b'{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":65536,"twin_socket":{"supported":true},"write_multiple":true,"migration":{"pgsize":4096}}}\0'
payloads = {
    "version": (1, struct.pack("<HH", 0, 2) + caps),
    "dma_map": (2, struct.pack("<IIQQQ", 32, 3, 0, 0x200000, 0x1000)),
    "dma_unmap": (3, struct.pack("<IIQQ", 24, 0, 0x10000, 0x10000)),
    "dma_unmap_all": (3, struct.pack("<IIQQ", 24, 2, 0, 0)),
    "get_info": (4, struct.pack("<IIII", 16, 0, 0, 0)),
    "region_info": (5, struct.pack("<IIIIQQ", 256, 0, 2, 0, 0, 0)),
    "io_fds": (6, struct.pack("<IIII", 256, 0, 0, 0)),
    "irq_info": (7, struct.pack("<IIII", 16, 0, 2, 0)),
    "set_irqs_trigger": (8, struct.pack("<IIIII", 20, 0x21, 2, 0, 1)),
    "set_irqs_eventfd": (8, struct.pack("<IIIII", 20, 0x24, 2, 0, 2)),
    "set_irqs_bool": (8, struct.pack("<IIIII", 22, 0x12, 0, 0, 1) + b"\1\0"),
    "set_irqs_disable": (8, struct.pack("<IIIII", 20, 0x21, 1, 0, 0)),
    "region_read": (9, struct.pack("<QII", 0, 0, 4)),
    "region_read_cfg": (9, struct.pack("<QII", 0, 7, 256)),
    "region_read_msix": (9, struct.pack("<QII", 0x800, 4, 8)),
    "region_write": (10, struct.pack("<QII", 0, 0, 8) + struct.pack("<Q", 0x10000)),
    "region_write_doorbell": (10, struct.pack("<QII", 16, 0, 4) + b"\1\2\0\0"),
    "region_write_cfg_msix": (10, struct.pack("<QII", 0x52, 7, 2) + b"\0\x80"),
    "region_write_mmap": (10, struct.pack("<QII", 4096, 2, 16) + b"A" * 16),
    "reset": (13, b""),
    "write_multi": (15, struct.pack("<Q", 2) + struct.pack("<QII", 0, 0, 4) + b"\1\0\0\0\0\0\0\0" + struct.pack("<QII", 8, 1, 4) + b"\2\0\0\0\0\0\0\0"),
    "feature_migration": (16, struct.pack("<II", 16, 0x10001)),
    "feature_state_set": (16, struct.pack("<II", 16, 0x20002) + struct.pack("<II", 6, 0)),
    "feature_state_stopcopy": (16, struct.pack("<II", 16, 0x20002) + struct.pack("<II", 3, 0)),
    "feature_log_start": (16, struct.pack("<II", 48, 0x20006) + struct.pack("<QII", 4096, 1, 0) + struct.pack("<QQ", 0x10000, 0x10000)),
    "feature_log_report": (16, struct.pack("<II", 64, 0x10008) + struct.pack("<QQQ", 0x10000, 0x10000, 4096)),
    "feature_precopy": (16, struct.pack("<II", 32, 0x1f001)),
    "feature_desc": (16, struct.pack("<II", 4096, 0x1f002)),
    "mig_read": (17, struct.pack("<II", 4104, 4096)),
    "mig_write": (18, struct.pack("<II", 12, 4) + b"UFIO"),
}
for name, (cmd, p) in payloads.items():
    nfds = 2 if name == "set_irqs_eventfd" else 0
    out("server_msg", name, bytes([nfds]) + hdr(cmd, p))
    # wire decoders: selector byte + payload
    sel = {2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7, 9: 8, 10: 8, 15: 12, 16: 13, 17: 14, 18: 14}.get(cmd)
    if sel is not None:
        out("wire", name, bytes([sel]) + p)
out("server_msg", "sequence", b"\0" + b"".join(hdr(c, p, 0x10 if c == 10 else 0) for c, p in payloads.values() if c not in (1, 13)))
out("server_msg", "posted_writes", b"\0" + hdr(10, struct.pack("<QII", 8, 0, 4) + b"\5\0\0\0", 0x10) * 5)
out("wire", "header", b"\0" + struct.pack("<HHIII", 1, 9, 32, 0, 0))
out("wire", "region_info_reply", b"\4" + struct.pack("<IIIIQQ", 80, 15, 2, 32, 65536, 0) + struct.pack("<HHIII", 1, 1, 0, 1, 0) + struct.pack("<QQ", 0, 65536))
out("wire", "io_fds_reply", b"\5" + struct.pack("<IIII", 56, 0, 0, 1) + struct.pack("<QQIIIIQ", 0, 4, 0, 0, 0, 0, 1))
out("wire", "dma_read_reply", b"\x0b" + struct.pack("<QQ", 0x1000, 8) + b"12345678")

for name, j in {"defaults": b"{}\0", "full": caps, "twin": b'{"capabilities":{"twin_socket":{"supported":true,"fd_index":0}}}\0'}.items():
    out("version_json", name, struct.pack("<HH", 0, 0) + j)
out("version_json", "bare", struct.pack("<HH", 0, 2))

# client: replies to the call picked by the first byte
def rep(cmd, p, msg_id=0, flags=1):
    return hdr(cmd, p, flags, msg_id)
out("client_reply", "device_info", b"\0" + rep(4, struct.pack("<IIII", 16, 3, 9, 5)))
out("client_reply", "region_info", b"\1" + rep(5, struct.pack("<IIIIQQ", 80, 15, 2, 32, 65536, 0) + struct.pack("<HHIII", 1, 1, 0, 1, 0) + struct.pack("<QQ", 0, 65536)))
out("client_reply", "irq_info", b"\2" + rep(7, struct.pack("<IIII", 16, 1, 2, 4)))
out("client_reply", "region_read", b"\3" + rep(9, struct.pack("<QII", 0, 0, 4096) + bytes(4096)))
out("client_reply", "feature", b"\4" + rep(16, struct.pack("<IIII", 16, 0x10002, 2, 0)))
out("client_reply", "mig_read", b"\5" + rep(17, struct.pack("<II", 12, 4) + b"abcd"))
out("client_reply", "error_reply", b"\0" + rep(4, b"", flags=0x21))
out("client_reply", "dma_read_request", b"\0" + hdr(11, struct.pack("<QQ", 0x1000, 16), 0, 99) + rep(4, struct.pack("<IIII", 16, 3, 9, 5)))
out("client_reply", "dma_write_request", b"\0" + hdr(12, struct.pack("<QQ", 0x1100, 4) + b"wxyz", 0, 98) + rep(4, struct.pack("<IIII", 16, 3, 9, 5)))

# migration stream: a well-formed stream, split at 1 + first-byte sizes
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
desc = json.dumps({"device_api": "vfio-pci", "type": "t", "software_version": "1.0.0", "pci": {"vendor_id": 1, "device_id": 2}}).encode() + b"\0"
payload = b"device-state" * 10
devcfg = struct.pack("<I", 256) + bytes(256) + struct.pack("<I", 0) + b"\0"
def rec(tag, flags, body):
    return struct.pack("<HHII", tag, flags, len(body), crc32c(body)) + body
pieces = [payload[:70], payload[70:]]
chain = 0
def chain_add(chain, body):
    return crc32c_cont(chain, struct.pack("<I", crc32c(body)))
def crc32c_cont(crc, data):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
s = b"UFIOMIG\0" + struct.pack("<HHI", 2, 0, 0)
s += rec(1, 0, desc)
for p in pieces:
    s += rec(2, 0, p)
    chain = chain_add(chain, p)
s += rec(9, 1, b"opt")
s += rec(4, 0, devcfg)
chain = chain_add(chain, devcfg)
s += rec(3, 0, struct.pack("<QII", len(payload), chain, len(pieces)))
out("mig_stream", "whole", b"\xff" + s)
out("mig_stream", "bytewise", b"\0" + s)
out("mig_stream", "truncated", b"\x10" + s[:-5])

base = {"device_api": "vfio-pci", "type": "t", "software_version": "1.2.3", "pci": {"vendor_id": "0x5546", "device_id": 1, "class_code": "0xff0000"},
        "attributes": {"q": 4, "m": "x"}, "accepts": {"types": ["u"], "pci_ids": ["5546:0002"], "software_version": {"min": "1.0.0"}, "attributes": {"q": [1, 2, 4], "mem": {"min": 1, "max": 8}}}}
other = dict(base, software_version="1.3.0", type="u")
out("compat", "pair", json.dumps(base).encode() + b"\0" + json.dumps(other).encode())
out("compat", "same", json.dumps(base).encode() + b"\0" + json.dumps(base).encode())
out("compat", "minimal", b'{"device_api":"vfio-pci","type":"t","software_version":"0.0.0","pci":{"vendor_id":1,"device_id":2}}\0{}')
print("seeds written to", os.path.join(here, "corpus"))
