#!/usr/bin/env python3
"""Record QNativeIpcKey test vectors from real Qt (PySide6) for the Swift reimplementation.

Re-run (from the repo root):

    PY="$(scripts/qt-venv.sh | tail -n 1)"
    TMPDIR=/tmp QT_QPA_PLATFORM=offscreen "$PY" Tests/QtPeer/make_key_vectors.py

It writes Tests/SharedMemoryKitTests/Resources/qt-key-vectors.json (UTF-8, pretty-printed,
deterministic order; running it twice gives identical bytes). Needs PySide6-Essentials 6.12.0
(scripts/qt-venv.sh installs it). TMPDIR is forced to /tmp, because Qt's System V legacy native
keys are paths under QStandardPaths::TempLocation; the file records it as "tempDir".

Tables (all strings are Qt's, verbatim; "type" is the numeric QNativeIpcKey::Type value):
  defaults    DefaultTypeForOs / legacyDefaultTypeForOs.
  legacy      QSharedMemory / QSystemSemaphore ::legacyNativeKey(key, type):
              {key, kind, type, nativeKey, string, roundTripEqual}
              roundTripEqual = (QNativeIpcKey::fromString(string) == the key), legacy key included.
  toString    QNativeIpcKey(nativeKey, type).toString(), plus keys made by legacyNativeKey:
              {nativeKey, type, legacyKey, string, roundTripEqual}. string is null when Qt
              returns a null QString (invalid type; PySide6 hands a null QString back as "").
  fromString  QNativeIpcKey::fromString(input):
              {input, valid, type, nativeKey, legacyKey, toString}.

How legacyKey is obtained: PySide6 6.12 does not expose QNativeIpcKeyPrivate::legacyKey.
This script re-does the parse Qt's fromString does (QUrl(text, TolerantMode), then
QUrlQuery(url).queryItems(), then QUrl::fromPercentEncoding(value.toUtf8()) of the last
"legacyKey" item) and checks the result against Qt itself through operator== (which compares the
legacy key): the key must equal QNativeIpcKey(nativeKey, type) exactly when no legacy key was
found, and must equal fromString("<plain toString>?legacyKey=<every byte %-escaped>") otherwise.
The script aborts if a check fails. An empty legacy key ("?legacyKey=") cannot be told apart from
none (Qt compares with QString ==, and toString omits it), so it is recorded as null.
"""

import hashlib
import json
import os
import string
import sys

os.environ["TMPDIR"] = "/tmp"  # before Qt reads it
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import PySide6  # noqa: E402
from PySide6.QtCore import (  # noqa: E402
    QNativeIpcKey,
    QSharedMemory,
    QStandardPaths,
    QSystemSemaphore,
    QUrl,
    QUrlQuery,
    qVersion,
)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "Tests", "SharedMemoryKitTests", "Resources", "qt-key-vectors.json")

T = QNativeIpcKey.Type
SYSV, POSIX, WINDOWS = 0x51, 0x100, 0x101


def qtype(n):
    return T(n)


def tnum(t):
    return int(t.value)


def qstr(s):
    """PySide6 returns a null QString as ''."""
    return None if s == "" else s


DROPPED = []


def survives(s):
    """True if the Python -> QString -> Python conversion keeps s intact.

    PySide6 6.12 treats a leading U+FEFF / U+FFFE in a Python str as a UTF-16 byte-order mark and
    drops it before Qt sees the string, so such inputs would record PySide's behaviour, not Qt's.
    """
    return QNativeIpcKey(s, T.PosixRealtime).nativeKey() == s


def dedup(seq):
    seen, out = set(), []
    for x in seq:
        if x not in seen and not survives(x):
            seen.add(x)
            if x not in DROPPED:
                DROPPED.append(x)
            continue
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


# --------------------------------------------------------------------------------------------
# Input sets
# --------------------------------------------------------------------------------------------

ASCII_CTRL = [chr(c) for c in range(0x01, 0x20)] + ["\x7f"]
EMOJI = [
    "😀",
    "👍🏽",  # skin-tone modifier
    "👨‍👩‍👧‍👦",  # ZWJ family
    "🏳️‍🌈",  # flag + VS16 + ZWJ
    "🇫🇷",  # regional indicators
    "🇺🇸🇯🇵",
    "1️⃣",  # keycap
    "❤️",
]
NON_LATIN = [
    "é", "ü", "ß", "Noël", "Nol", "Привет", "Ελληνικά", "日本語", "中文键", "مرحبا", "עברית",
    "ไทย", "한국어", "e\u0301", "İstanbul", "ı", "ﬁle", "Ａｂｃ", "Ωmega", "ǅ",
]
ODD_CODEPOINTS = [
    "\x80", "\x85", "\x9f", "\xa0", "\xad", "\xe9", "\xa0\xff", "\xff", "\u0100", "\u2000",
    "\u200b", "\u200d", "\u2028", "\u2029", "\u3000", "\ue000", "\ufeff", "\ufffd", "\uffff",
    "\U00010000", "\U0001f600", "\U0010ffff",
]


def legacy_keys():
    keys = [
        "", "a", "A", "test", "hello", "Hello World", "interop_demo", "klogshm", "my key/1",
        "a1-b2_c3", "0", "7", "12345", "007", "3.14", " ", "  ", "a b", " leading", "trailing ",
        "a  b", "/", "//", "///", "/abs", "/abs/path", "//double", "//a", "///x", "a/b", "a//b",
        "a\\b", "\\\\server\\share", "Global\\x", "Local\\x", ".", "..", "a.b", "CON",
        "\t", "a\tb", "\n", "a\nb", "\r\n", "a\x00b", "\x00", "\x01", "\x1f", "\x7f",
        "%", "%41", "%%", "100%", "a%20b", "%2F", "%zz", "?", "#", "&", "=", "+", "a?b", "a#b",
        "a&b", "a=b", "a&b=c", "x=y&z", "a+b", "?#", "#?", "legacyKey=x", "?legacyKey=x",
        "a;b", "a:b", ":", "[x]", "{x}", "<x>", "a|b", "a^b", "a`b", "a\"b", "a'b", "~user",
    ]
    keys += list(string.punctuation)
    keys.append(string.punctuation)
    keys.append("a" + "b".join(string.punctuation) + "c")
    keys += ["a" + c + "b" for c in ASCII_CTRL]
    keys += NON_LATIN + ODD_CODEPOINTS + EMOJI
    keys += ["Key-é-😀", "Noël 2024 🎄", "ключ/key", "ü/ü", "键%键", "é&é=é"]
    letters = string.ascii_letters  # 52
    keys.append((letters * 4)[:197])  # 197 letters: 18 + 197 + 40 = 255 = NAME_MAX
    keys.append((letters * 4)[:198])  # 198 letters: one over
    keys.append((letters * 4)[:197] + "0123456789")  # 197 letters + digits
    keys.append(("Key 300 chars-" * 30)[:300])  # 300 characters, mixed
    keys.append("x" * 300)
    keys.append(("Noël-é/ü 😀 " * 100)[:1000])  # 1000 characters, non-ASCII and spaces
    keys.append((letters + "0123456789 /%?#&=+") * 14 + "end")  # ~1000 chars, specials
    return dedup(keys)


LEGACY_TYPES = [SYSV, POSIX, 84, 1, 255, WINDOWS, 0]
TOSTRING_TYPES = [SYSV, POSIX, WINDOWS, 1, 84, 255, 0]


def native_keys():
    keys = [
        "", "foobar", ":/", "/:", "?#", "#?", "\xe9", "\xa0\xff", "\u0100", "\u2000",
        "\U00010000", "//", "///", "//a", "///a", "////", "/", "/a", "a", "a b", "/a\\b",
        "Global\\sometext", "%", "%41", "%25", "%%", "/%2F", "//%", "%//", "a//b", "/a//b",
        " //", "/ /", ".", "..", "/./a", "/../a", "a/../b", "/a/./b/", "a:b", ":", "::", "/a:b",
        "a?b", "a#b", "a?b#c", "a&b=c", "a+b", "a;b", "[x]", "{x}", "<x>", "a|b", "a^b", "a`b",
        "a\"b", "a'b", "a\x00b", "\x00", "/qipc_sharedmemory_testa94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
        "/tmp/qipc_sharedmemory_testa94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
        "/tmp/runtime-root/test", "/dev/shm/x", "relative/path", "/trailing/", "é/ü",
        "\t", "\n", "a\r\nb", "?", "#", "?legacyKey=x", "/x?legacyKey=y", "/x#frag",
        "x" * 300, "/" + "k" * 1000,
    ]
    # every ASCII character, alone and embedded
    for c in range(0x01, 0x80):
        keys.append(chr(c))
        keys.append("/a" + chr(c) + "b")
    # every ASCII character after a leading "//" and at the start of a path
    for c in string.punctuation + " \t":
        keys.append("//" + c)
        keys.append(c + "/x")
    keys += NON_LATIN + ODD_CODEPOINTS + EMOJI
    keys += ["/" + e for e in NON_LATIN + ODD_CODEPOINTS + EMOJI]
    return dedup(keys)


def legacy_tostring_keys():
    """Legacy keys whose query-encoding matters; used with legacyNativeKey (SHM, POSIX/SysV)."""
    keys = ["a" + chr(c) + "b" for c in range(0x00, 0x80)]
    keys += [
        "&", "=", "#", "%", "?", "+", " ", "a b", "a&b=c", "%41", "%25", "100%", "a+b c", "x==y",
        "&&", "??", "##", "é", "Noël", "日本語", "😀", "👨‍👩‍👧‍👦", "\t\n", "\x01", "\x7f",
        "\x80", "\x9f", "\xa0", "\u2028", "\ufeff", "a/b", "//x", "a\\b", "legacyKey=x",
        "a#b?c&d=e%f+g h", "[x]{y}<z>", "a|b^c`d\"e",
    ]
    return dedup(keys)


def fromstring_inputs():
    ins = []
    add = ins.append
    # --- schemes
    for s in ["posix:/foo", "POSIX:/foo", "Posix:/foo", "pOsIx:/foo", "systemv:/foo",
              "SYSTEMV:/foo", "SystemV:/foo", "windows:foo", "WINDOWS:foo", "Windows:Global\\foo",
              "systemv-81:/x", "SYSTEMV-81:/x", "systemv-84:/x", "SystemV-84:/x", "systemv-009:/x",
              "systemv-0:/x", "systemv-00:/x", "systemv-256:/x", "systemv--255:/x",
              "systemv--1:/x", "systemv-+1:/x", "systemv+1:/x", "systemv-0x01:/x",
              "systemv-0x1:/x", "systemv255:/x", "systemv1:/x", "systemv-:/x", "systemv-a:/x",
              "systemv-1a:/x", "systemv-1.0:/x", "systemv.1:/x", "systemv-01:/x",
              "systemv-084:/x", "systemv-0081:/x", "systemv-000000000001:/x",
              "systemv-2147483647:/x", "systemv-2147483648:/x", "systemv-2147483649:/x",
              "systemv-4294967295:/x", "systemv-4294967297:/x", "systemv-4294967377:/x",
              "systemv-18446744073709551617:/x", "systemv-99999999999999999999:/x",
              "systemv- 1:/x", "systemv-1 :/x", "systemv-\u0661:/x", "systemv-\uff11:/x",
              "posixx:/x", "posi:/x", "posix-1:/x", "posix-256:/x", "windows-1:/x",
              "systemvx:/x", "systemv_1:/x", "sysv:/x", "ftp:/x", "file:/x", "http://x/y",
              "posix+:/x", "posix.:/x", "1posix:/x", "-posix:/x", "+posix:/x", "ｐｏｓｉｘ:/x",
              "pos ix:/x", "posix :/x", "posıx:/x", "POSİX:/x", "systemv-٣:/x"]:
        add(s)
    for n in range(1, 256):
        add("systemv-%d:/x" % n)
    for n in [-1, 0, 256, 257, 1000, 65535, 65536, 65537, 65617]:
        add("systemv-%d:/x" % n)
    # --- no scheme / degenerate
    for s in ["", ":", "::", ":x", ":/x", "81", "256", "posix", "systemv", "windows", "posix:",
              "systemv:", "windows:", "systemv-84:", "posix::", "posix:::/x", "x", "/foo",
              "//foo", "foo:bar", "bogus", "posix/foo", "posix;/foo", "posix%3A/foo",
              "posix%3a/foo", "%70osix:/foo", "posix\\:/foo", "\"posix:/foo\"", "<posix:/foo>",
              "posix:/foo\x00bar", "\x00posix:/foo"]:
        add(s)
    # --- authority
    for s in ["posix://host/foo", "posix:///foo", "posix:////foo", "posix://///foo",
              "posix://", "posix:///", "posix://@/foo", "posix://user@/foo", "posix://:1/foo",
              "posix://:/foo", "posix://h:/foo", "posix://user:pw@host:12/foo", "posix://[::1]/foo",
              "posix://[x]/y", "posix://h", "posix://%41/x", "posix://a b/x", "posix://a%20b/x",
              "systemv://tmp/x", "systemv:///tmp/x", "windows://./x", "posix://./x",
              "posix://../x", "posix://:0/x", "posix://:99999/x", "posix://@", "posix://?x",
              "posix://#x", "posix:/\\/x", "posix:\\\\x", "posix://é/x", "posix://xn--nol-bma/x"]:
        add(s)
    # --- percent decoding
    for s in ["posix:%2f%66o%6f", "posix:/a%20b", "posix:/%zz", "posix:/%4", "posix:/%",
              "posix:%", "posix:/%%", "posix:/%%%", "posix:/%25", "posix:/%2525", "posix:/%C3%A9",
              "posix:/%c3%a9", "posix:/%FF", "posix:/%ff", "posix:/%C3", "posix:/%C3%28",
              "posix:/%ED%A0%80", "posix:/%F0%9F%98%80", "posix:/%F0%9F%98", "posix:/%00",
              "posix:/a%00b", "posix:/%2F%2F", "posix:%2F%2Ffoo", "posix:/%2F", "posix:%2F",
              "posix:/%3F", "posix:/%23", "posix:/%3f%23", "posix:/%41%42", "posix:/%7F",
              "posix:/%80", "posix:/%E9", "posix:/%%41", "posix:/%4%41", "posix:/a%",
              "posix:/a%2", "posix:/%g0", "posix:/%0g", "posix:/%2G", "posix:/%-1", "posix:/% 41",
              "posix:/%+41", "posix:/%C0%AF", "posix:/%E2%82", "posix:/%EF%BB%BF",
              "posix:/%F4%90%80%80", "posix:/%3A", "posix:%3A", "posix:%3Ax", "posix:/%5C",
              "posix:/%5B%5D", "posix:/%7B%7D", "posix:/%20", "posix:%20", "posix:/%09",
              "posix:/%0A", "posix:/é%20é", "posix:/%E9t%E9", "posix:/%41%zz%42",
              "posix:/a%2Fb", "posix:/a%2fb"]:
        add(s)
    for b in range(256):
        add("posix:/a%%%02Xb" % b)
        lower = "posix:/a%%%02xb" % b
        if lower != "posix:/a%%%02Xb" % b:
            add(lower)
    # --- every ASCII char in the path, first position and in the query value
    for c in range(0x01, 0x80):
        ch = chr(c)
        add("posix:/a" + ch + "b")
        add("posix:" + ch)
        add("posix:/x?legacyKey=a" + ch + "b")
    # --- query
    for s in ["posix:/foo?bar", "posix:/foo?bar=1", "posix:/foo?", "posix:/foo?&", "posix:/foo?&&",
              "posix:/foo?;", "posix:/foo?legacyKey", "posix:/foo?legacyKey=",
              "posix:/foo?legacyKey=x", "posix:/foo?legacyKey=x&legacyKey=y",
              "posix:/foo?legacyKey=x&legacyKey=", "posix:/foo?legacyKey=&legacyKey=y",
              "posix:/foo?legacyKey=x&legacyKey", "posix:/foo?legacyKey=x&",
              "posix:/foo?&legacyKey=x", "posix:/foo?&&legacyKey=x&&", "posix:/foo?legacyKey=x&bar",
              "posix:/foo?bar&legacyKey=x", "posix:/foo?legacykey=x", "posix:/foo?LEGACYKEY=x",
              "posix:/foo?LegacyKey=x", "posix:/foo?legacyKey=a=b", "posix:/foo?legacyKey==",
              "posix:/foo?legacyKey=%26", "posix:/foo?legacyKey=%3D", "posix:/foo?legacyKey=a+b",
              "posix:/foo?legacyKey=a%2Bb", "posix:/foo?legacyKey=a%2bb", "posix:/foo?legacyKey=a b",
              "posix:/foo?legacyKey=%20", "posix:/foo?legacyKey=%25", "posix:/foo?legacyKey=%2525",
              "posix:/foo?legacyKey=%", "posix:/foo?legacyKey=%%", "posix:/foo?legacyKey=%zz",
              "posix:/foo?legacyKey=%4", "posix:/foo?legacyKey=%C3%A9", "posix:/foo?legacyKey=%c3%a9",
              "posix:/foo?legacyKey=%FF", "posix:/foo?legacyKey=%C3", "posix:/foo?legacyKey=é",
              "posix:/foo?legacyKey=#x", "posix:/foo?legacyKey=x#y", "posix:/foo?legacyKey=x?y",
              "posix:/foo?legacyKey=x;y", "posix:/foo?legacyKey=x;legacyKey=y",
              "posix:/foo?legacyKey%3Dx", "posix:/foo?legacyKey%3dx", "posix:/foo?legacy%4Bey=x",
              "posix:/foo?legacy%4bey=x", "posix:/foo?%6CegacyKey=x", "posix:/foo?legacyKey%26=x",
              "posix:/foo?=x", "posix:/foo?=", "posix:/foo?legacyKey=x&=", "posix:/foo? legacyKey=x",
              "posix:/foo?legacyKey =x", "posix:/foo?legacyKey= x", "posix:/foo??legacyKey=x",
              "posix:?legacyKey=x", "posix:?", "posix:?&", "posix:/foo?legacyKey=%00",
              "posix:/foo?legacyKey=\t", "posix:/foo?legacyKey=%09", "posix:/foo?legacyKey=a%0Ab",
              "posix:/foo?legacyKey=Noël", "posix:/foo?legacyKey=No%C3%ABl",
              "posix:/foo?legacyKey=%E2%82", "posix:/foo?legacyKey=%ED%A0%80",
              "posix:/foo?legacyKey=😀", "posix:/foo?legacyKey=%F0%9F%98%80",
              "posix:/foo?legacyKey=%2F%2F", "posix:/foo?legacyKey=//x", "posix:/foo?legacyKey=%3F",
              "posix:/foo?legacyKey=%23", "posix:/foo?legacyKey=%41", "posix:/foo?legacyKey=%5B%5D",
              "posix:/foo?legacyKey=[]{}", "posix:/foo?legacyKey=" + "q" * 300,
              "systemv:/tmp/x?legacyKey=test", "windows:x?legacyKey=y", "systemv-84:/x?legacyKey=y",
              "posix:/foo?legacyKey=x?", "posix:/foo?x=legacyKey", "posix:/foo?legacyKey&legacyKey=z"]:
        add(s)
    # --- fragments
    for s in ["posix:/foo#bar", "posix:/foo#", "posix:#", "posix:#x", "posix:/foo?legacyKey=x#frag",
              "posix:/foo#frag?legacyKey=x", "posix:/foo##", "posix:/foo#a#b", "posix:/foo#%zz",
              "posix:/foo#bar baz", "posix:/foo#?bar", "posix:/foo?bar#x", "posix:/foo#é",
              "posix:/foo?#", "posix:/foo?legacyKey=#", "posix:/foo#%", "posix:/foo#\t"]:
        add(s)
    # --- whitespace
    for s in [" posix:/foo", "posix:/foo ", "  posix:/foo  ", "\tposix:/foo", "posix:/foo\t",
              "posix:/foo\n", "\nposix:/foo", "posix:/foo\r\n", "posix:/a b", "posix:/a\tb",
              "posix:/a\nb", "posix:/a\rb", "posix:/a\x0bb", "posix:/a\x0cb", "posix:/a\x01b",
              "posix:/a\x7fb", "posix:/a  b", "posix: /foo", "posix:/foo ?legacyKey=x",
              "posix:/foo? legacyKey=x", "posix:/foo?legacyKey=x ", "posix:/foo?legacyKey= x ",
              "\x0bposix:/foo", "\x0cposix:/foo", "\x00posix:/foo", "\xa0posix:/foo",
              "posix:/foo\xa0", "\u3000posix:/foo", "\u2028posix:/foo", "\ufeffposix:/foo",
              "posix:/foo\x00", " ", "\t", "posix: ", "posix:\t", " posix: "]:
        add(s)
    # --- backslashes, brackets and other "unsafe" characters
    for s in ["posix:\\foo", "posix:/a\\b", "windows:Global\\x", "posix:\\\\server\\x",
              "windows:\\\\.\\x", "posix:/[x]", "posix:/{x}", "posix:[", "posix:]", "posix:/a]b",
              "posix:/a|b", "posix:/a^b", "posix:/a`b", "posix:/a\"b", "posix:/<x>", "posix:/a'b",
              "posix:[::1]", "posix:/a;b=c", "posix:/a,b", "posix:/a!b$c&d'e(f)g*h+i,j;k=l",
              "posix:/a@b", "posix:@x", "posix:/~x", "posix:~x"]:
        add(s)
    # --- dots and slashes
    for s in ["posix:/./a", "posix:/../a", "posix:a/../b", "posix:.", "posix:..", "posix:/a/./b/",
              "posix:/", "posix://", "posix:/%2F", "posix:/%2Fx", "posix:/%2F/", "posix:a//b",
              "posix:/a//b", "posix:a:b", "posix:/a:b", "posix:a/b:c", "systemv:tmp/x",
              "systemv:/tmp//x", "posix:./a", "posix:../a"]:
        add(s)
    # --- Unicode
    for s in ["posix:/é", "posix:/Noël", "posix:/日本", "posix:/😀", "posix:/👨‍👩‍👧‍👦",
              "posix:/🇫🇷", "posix:/\u200b", "posix:/\ufeff", "posix:/\x85", "posix:/\u2028",
              "posix:/e\u0301", "posix:/\uffff", "posix:/\U0010ffff", "posix:/\x80", "posix:/\x9f",
              "posix:/\xa0", "posix:/\xad", "posix:é", "posix:/\ufffd", "posix:/\ue000",
              "posix:/Ａ", "posix:/\u3000", "posix:/\u00a0x\u00a0"]:
        add(s)
    # --- one malformed escape anywhere makes TolerantMode treat every '%' literally
    for s in ["posix:/%41?legacyKey=%zz", "posix:/%zz?legacyKey=%41", "posix:/%41#%zz",
              "posix:/%41#%", "posix:/%41#%41", "posix:/%41?legacyKey=%41%", "posix:/%2F%2F%zz",
              "posix:%2F%2F%zz", "posix:/%25%zz", "posix:/%C3%A9%", "posix:/x?legacyKey=%26%zz",
              "posix:/x?legacyKey=%3D%", "posix:/x?legacyKey=a%26b=%", "posix:/%2F?legacyKey=%",
              "posix:%70%zz", "posix:/%7e%zz", "posix:/%41%4", "posix:/%00%", "posix:/a%20b%",
              "posix:/a b%", "posix:/%41%%42", "posix://%zz/x", "posix:///%41%zz",
              "posix:/%f0%9f%98%80%", "posix:/x?%6CegacyKey=a%zz"]:
        add(s)
    # --- long
    add("posix:/" + "k" * 300)
    add("systemv:/tmp/" + "x" * 1000)
    add("posix:/" + "é" * 300 + "?legacyKey=" + "%C3%A9" * 300)
    return ins


# --------------------------------------------------------------------------------------------
# Qt probes
# --------------------------------------------------------------------------------------------

def mirror_legacy_key(text):
    """Re-does QNativeIpcKey::fromString's query handling; returns (legacyKeyOrNone, badItem)."""
    u = QUrl(text, QUrl.ParsingMode.TolerantMode)
    if not u.hasQuery():
        return None
    legacy = None
    for name, value in QUrlQuery(u).queryItems():
        if name == "legacyKey":
            legacy = QUrl.fromPercentEncoding(value.encode("utf-8", "surrogatepass"))
    return legacy or None


def escape_all(s):
    return "".join(
        chr(b) if (0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A) else "%%%02X" % b
        for b in s.encode("utf-8", "surrogatepass")
    )


CHECK_FAILURES = []


def legacy_of(key, text_for_mirror):
    """Legacy key of `key` (parsed from text_for_mirror), verified with Qt's operator==."""
    plain = QNativeIpcKey(key.nativeKey(), key.type())
    has_legacy = not (key == plain)
    mirrored = mirror_legacy_key(text_for_mirror) if text_for_mirror is not None else None
    if has_legacy != (mirrored is not None):
        CHECK_FAILURES.append(("hasLegacy", text_for_mirror, has_legacy, mirrored))
        return mirrored
    if mirrored is not None:
        probe = QNativeIpcKey.fromString(plain.toString() + "?legacyKey=" + escape_all(mirrored))
        if not (probe == key):
            CHECK_FAILURES.append(("legacyValue", text_for_mirror, mirrored))
    return mirrored


def legacy_native_key(kind, key, type_num):
    cls = QSharedMemory if kind == "sharedmemory" else QSystemSemaphore
    return cls.legacyNativeKey(key, qtype(type_num))


def build_legacy():
    rows = []
    for key in legacy_keys():
        for kind in ("sharedmemory", "systemsemaphore"):
            for t in LEGACY_TYPES:
                k = legacy_native_key(kind, key, t)
                s = qstr(k.toString())
                if s is None and k.isValid():
                    CHECK_FAILURES.append(("nullStringForValidType", key, kind, t))
                rows.append({
                    "key": key,
                    "kind": kind,
                    "type": tnum(k.type()),
                    "nativeKey": k.nativeKey(),
                    "string": s,
                    "roundTripEqual": bool(s is not None and QNativeIpcKey.fromString(s) == k),
                })
                if t not in (0,) and tnum(k.type()) != t:
                    CHECK_FAILURES.append(("typeChanged", key, kind, t))
    return rows


def build_tostring():
    rows = []
    for nk in native_keys():
        for t in TOSTRING_TYPES:
            k = QNativeIpcKey(nk, qtype(t))
            s = qstr(k.toString())
            if s is None and k.isValid():
                CHECK_FAILURES.append(("nullStringForValidType", nk, t))
            rows.append({
                "nativeKey": nk,
                "type": t,
                "legacyKey": None,
                "string": s,
                "roundTripEqual": bool(s is not None and QNativeIpcKey.fromString(s) == k),
            })
    for lk in legacy_tostring_keys():
        for kind, t in (("sharedmemory", POSIX), ("sharedmemory", SYSV), ("systemsemaphore", 84)):
            k = legacy_native_key(kind, lk, t)
            s = qstr(k.toString())
            rows.append({
                "nativeKey": k.nativeKey(),
                "type": tnum(k.type()),
                "legacyKey": lk,
                "string": s,
                "roundTripEqual": bool(s is not None and QNativeIpcKey.fromString(s) == k),
            })
    return rows


def parse_row(text):
    k = QNativeIpcKey.fromString(text)
    valid = k.isValid()
    legacy = legacy_of(k, text) if valid else None
    return {
        "input": text,
        "valid": valid,
        "type": tnum(k.type()),
        "nativeKey": k.nativeKey(),
        "legacyKey": legacy,
        "toString": qstr(k.toString()),
    }


def build_fromstring(legacy_rows, tostring_rows):
    inputs = fromstring_inputs()
    inputs += [r["string"] for r in tostring_rows if r["string"] is not None]
    inputs += [r["string"] for r in legacy_rows if r["string"] is not None]
    rows = [parse_row(s) for s in dedup(inputs)]
    # Self-check: a valid parsed key re-parses to an equal key.
    for r in rows:
        if r["valid"]:
            k = QNativeIpcKey.fromString(r["input"])
            if not (QNativeIpcKey.fromString(k.toString()) == k):
                CHECK_FAILURES.append(("reparse", r["input"]))
    return rows


def main():
    temp = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.TempLocation)
    if temp != "/tmp":
        sys.exit("make_key_vectors: Qt's temp location is %r, expected /tmp" % temp)
    legacy = build_legacy()
    tostr = build_tostring()
    fromstr = build_fromstring(legacy, tostr)
    # Sanity: the documented legacy derivation holds for every SysV/POSIX row.
    for r in legacy:
        if r["key"] and r["type"] in (SYSV, POSIX, 84, 1, 255):
            prefix = "qipc_sharedmemory_" if r["kind"] == "sharedmemory" else "qipc_systemsem_"
            name = prefix + "".join(c for c in r["key"] if c in string.ascii_letters) + \
                hashlib.sha1(r["key"].encode("utf-8")).hexdigest()
            want = ("/" if r["type"] == POSIX else "/tmp/") + name
            if r["nativeKey"] != want:
                CHECK_FAILURES.append(("legacyDerivation", r["key"], r["kind"], r["type"]))
    if DROPPED:
        print("skipped (PySide6 alters them on the way to Qt): %r" % DROPPED, file=sys.stderr)
    if CHECK_FAILURES:
        for f in CHECK_FAILURES[:50]:
            print("check failed:", repr(f), file=sys.stderr)
        sys.exit("make_key_vectors: %d self-checks failed" % len(CHECK_FAILURES))

    doc = {
        "generator": "Tests/QtPeer/make_key_vectors.py",
        "qtVersion": qVersion(),
        "pyside6Version": PySide6.__version__,
        "tempDir": temp,
        "notes": [
            "type is the numeric QNativeIpcKey::Type (0 = invalid, 1..255 = SystemV ftok id, 81 = SystemV, 256 = PosixRealtime, 257 = Windows).",
            "string/toString null = Qt returned a null QString (invalid type).",
            "legacyKey null = no legacy key or an empty one (Qt cannot tell them apart).",
            "roundTripEqual = QNativeIpcKey::fromString(string) == key (operator== includes the legacy key).",
            "Inputs starting with U+FEFF or U+FFFE are absent: PySide6 strips them as a BOM before Qt sees the string.",
        ],
        "defaults": {
            "DefaultTypeForOs": tnum(QNativeIpcKey.DefaultTypeForOs),
            "legacyDefaultTypeForOs": tnum(QNativeIpcKey.legacyDefaultTypeForOs()),
        },
        "counts": {"legacy": len(legacy), "toString": len(tostr), "fromString": len(fromstr)},
        "legacy": legacy,
        "toString": tostr,
        "fromString": fromstr,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(text + "\n")
    print("wrote %s: legacy=%d toString=%d fromString=%d" % (OUT, len(legacy), len(tostr), len(fromstr)))


if __name__ == "__main__":
    main()
