"""The EQL function library against Elasticsearch's semantics and the elastic-eql spec corpus.

Expected values come from Elasticsearch's EQL function reference, its processor unit tests
(``*FunctionProcessorTests``, ``StringUtilsTests``, ``CIDRUtilsTests``) and the corpus queries named in the
comments; where the reference and the processors disagree, the processors (what Elasticsearch runs) win.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

import pytest

from guard.policy.corpus import default_corpus
from guard.policy.functions import (
    FUNCTIONS,
    LEGACY_FUNCTIONS,
    FunctionError,
    FunctionSpec,
    call,
    java_string,
    lookup,
    validate,
)
from guard.policy.semantics import Value
from guard.policy.wildcard import wildcard_match

LONG_MAX = (1 << 63) - 1
LONG_MIN = -(1 << 63)
NAN = math.nan
INF = math.inf
WIN_PATH = "C:\\Windows\\System32\\cmd.exe"
DOMAIN = "subdomain.example.com"
ES_PATH = "C:\\workspace\\dev\\TestLogs\\something.json"

Case = tuple[str, list[Value], bool, Value]

CASES: list[Case] = [
    # ------------------------------------------------------------------ add
    ("add", [4, 5], False, 9),
    ("add", [4, 0.5], False, 4.5),
    ("add", [0.5, 0.25], False, 0.75),
    ("add", [4, -2], False, 2),
    ("add", [-2, -2], False, -4),
    ("add", [None, 4], False, None),
    ("add", [4, None], False, None),
    ("add", [None, None], False, None),
    ("add", ["x", None], False, None),  # null is checked before the argument kinds
    ("add", [LONG_MAX, 0], False, LONG_MAX),
    ("add", [LONG_MAX, 1.0], False, 9.223372036854776e18),
    ("add", [1, 0], False, 1),  # twoAdds: add(serial_event_id, 0) == 1 and add(0, 1) == serial_event_id
    ("add", [0, 1], False, 1),
    # ------------------------------------------------------------------ subtract
    ("subtract", [10, 2], False, 8),
    ("subtract", [10.5, 0.5], False, 10.0),
    ("subtract", [1, 0.2], False, 0.8),
    ("subtract", [-2, 4], False, -6),
    ("subtract", [-2, -4], False, 2),
    ("subtract", [1, -5], False, 6),  # subtract: subtract(serial_event_id, -5) == 6
    ("subtract", [None, 2], False, None),
    ("subtract", [2, None], False, None),
    # ------------------------------------------------------------------ multiply
    ("multiply", [2, 2], False, 4),
    ("multiply", [0.5, 2], False, 1.0),
    ("multiply", [0.25, 2], False, 0.5),
    ("multiply", [-2, 2], False, -4),
    ("multiply", [-2, -2], False, 4),
    ("multiply", [6, 5], False, 30),  # multiplyAndDivide: multiply(6, serial_event_id) == 30
    ("multiply", [None, 2], False, None),
    ("multiply", [2, None], False, None),
    ("multiply", [1e308, 10], False, INF),
    # ------------------------------------------------------------------ divide (Java long / double)
    ("divide", [4, 2], False, 2),
    ("divide", [4, 3], False, 1),
    ("divide", [4, 3.0], False, 4 / 3),
    ("divide", [4, 0.5], False, 8.0),
    ("divide", [0.5, 4], False, 0.125),
    ("divide", [0.5, 0.25], False, 2.0),
    ("divide", [4, -2], False, -2),
    ("divide", [-4, -2], False, 2),
    ("divide", [-7, 2], False, -3),  # truncates toward zero (Python's // would give -4)
    ("divide", [7, -2], False, -3),
    ("divide", [-7, -2], False, 3),
    ("divide", [30, 4.0], False, 7.5),  # multiplyAndDivide: divide(30, 4.0) == 7.5
    ("divide", [4, 4], False, 1),
    ("divide", [4, 3], False, 1),  # the reference's rounding warning: divide(4, process.args_count) == 1
    ("divide", [4.0, 3], False, 4 / 3),
    ("divide", [LONG_MIN, -1], False, LONG_MIN),  # Java wraps silently
    ("divide", [1, 0.0], False, INF),
    ("divide", [-1, 0.0], False, -INF),
    ("divide", [1, -0.0], False, -INF),
    ("divide", [0.0, 0.0], False, NAN),
    ("divide", [0, 0.0], False, NAN),
    ("divide", [NAN, 0.0], False, NAN),
    ("divide", [None, 4], False, None),
    ("divide", [4, None], False, None),
    ("divide", [None, 0], False, None),
    # ------------------------------------------------------------------ modulo (sign of the dividend)
    ("modulo", [10, 6], False, 4),
    ("modulo", [10, 5], False, 0),
    ("modulo", [10, 0.5], False, 0.0),
    ("modulo", [10, -6], False, 4),
    ("modulo", [-10, -6], False, -4),
    ("modulo", [-10, 6], False, -4),
    ("modulo", [106, 10], False, 6),
    ("modulo", [11, 10], False, 1),  # moduloEqualsField: modulo(11, 10) == serial_event_id
    ("modulo", [10.5, 3], False, 1.5),
    ("modulo", [-10.5, 3], False, -1.5),
    ("modulo", [LONG_MIN, -1], False, 0),
    ("modulo", [1, 0.0], False, NAN),
    ("modulo", [INF, 1], False, NAN),
    ("modulo", [5.0, INF], False, 5.0),
    ("modulo", [None, 5], False, None),
    ("modulo", [7, None], False, None),
    # ------------------------------------------------------------------ between
    ("between", [WIN_PATH, "System32\\", ".exe"], False, "cmd"),
    ("between", [WIN_PATH, "system32\\", ".exe"], False, ""),
    ("between", [WIN_PATH, "workspace\\", ".exe"], False, ""),
    ("between", [WIN_PATH, "system32\\", ".exe"], True, "cmd"),
    ("between", [WIN_PATH, "\\", "\\", False], False, "Windows"),
    ("between", [WIN_PATH, "\\", "\\", True], False, "Windows\\System32"),
    ("between", ["", "System32\\", ".exe"], False, ""),
    ("between", ["", "", ""], False, ""),
    ("between", [None, "System32\\", ".exe"], False, None),
    ("between", ["abc", "", "c"], False, "abc"),  # an empty bound returns the whole source
    ("between", ["abc", "a", ""], False, "abc"),
    ("between", ["welcome to event query language", " ", " ", False], False, "to"),
    ("between", ["welcome to event query language", " ", " ", True], False, "to event query"),
    ("between", [ES_PATH, "dev", ".json", False], False, "\\TestLogs\\something"),  # between2
    ("between", [ES_PATH, "dev", ".json", True], False, "\\TestLogs\\something"),  # between3
    ("between", [ES_PATH, "Test", ".json", False], False, "Logs\\something"),
    ("between", [ES_PATH, "test", ".json", False], False, ""),
    ("between", [ES_PATH, "test", ".json", True], True, "Logs\\something"),
    ("between", ["System Idle Process", "s", "E"], True, "yst"),  # betweenCaseInsensitive1
    ("between", ["System Idle Process", "s", "E", False], True, "yst"),  # betweenCaseInsensitive2
    ("between", ["System Idle Process", "s", "e", False], False, "t"),  # betweenCaseSensitive
    ("between", ["System Idle Process", "S", "e", True], False, "ystem Idle Proc"),  # between1
    ("between", ["System Idle Process", "s", "e", True], True, "ystem Idle Proc"),  # betweenCaseInsensitive3
    ("between", ["System Idle Process", "Y", "e", False], False, ""),
    ("between", ["😀a[x]b", "[", "]"], False, "x"),
    ("between", ["[😀]", "[", "]"], False, "😀"),
    # ------------------------------------------------------------------ cidrMatch
    ("cidrMatch", ["10.6.48.157", "10.6.48.157/8"], False, True),  # cidrMatch1
    ("cidrMatch", ["10.6.48.157", "192.168.0.0/16"], False, False),  # cidrMatch2
    ("cidrMatch", ["10.6.48.157", "192.168.0.0/16", "10.6.48.157/8"], False, True),  # cidrMatch3
    ("cidrMatch", ["10.6.48.157", "0.0.0.0/0"], False, True),  # cidrMatch4
    ("cidrMatch", ["192.168.152.12", "192.168.0.0/16"], False, True),
    ("cidrMatch", ["192.168.152.12", "192.168.0.0/16", "10.0.0.0/8"], False, True),
    ("cidrMatch", ["192.168.152.12", "10.0.0.0/8"], False, False),
    ("cidrMatch", ["192.168.152.12", "10.0.0.0/8", "10.128.0.0/9"], False, False),
    ("cidrMatch", [None, "10.0.0.0/8"], False, None),
    ("cidrMatch", ["10.0.0.1", "10.0.0.1"], False, True),  # a bare address matches itself only
    ("cidrMatch", ["10.0.0.2", "10.0.0.1"], False, False),
    ("cidrMatch", ["10.0.0.1", "10.0.0.1/32"], False, True),
    ("cidrMatch", ["10.0.0.2", "10.0.0.1/32"], False, False),
    ("cidrMatch", ["10.255.255.255", "10.0.0.0/8"], False, True),
    ("cidrMatch", ["11.0.0.0", "10.0.0.0/8"], False, False),
    ("cidrMatch", ["2001:db8::1", "2001:db8::/32"], False, True),
    ("cidrMatch", ["2001:db9::1", "2001:db8::/32"], False, False),
    ("cidrMatch", ["::1", "::1/128"], False, True),
    ("cidrMatch", ["2001:DB8::1", "2001:db8:0:0:0:0:0:1"], False, True),
    ("cidrMatch", ["10.1.2.3", "::fffe:0:0/95"], False, True),  # IPv4 compares in the IPv4-mapped space
    ("cidrMatch", ["10.1.2.3", "::/0"], False, True),
    ("cidrMatch", ["2001:db8::1", "0.0.0.0/0"], False, False),
    ("cidrMatch", ["::ffff:10.1.2.3", "10.0.0.0/8"], False, True),  # IPv4-mapped IPv6 is IPv4
    ("cidrMatch", ["10.1.2.3", "::ffff:10.1.2.3"], False, True),
    ("cidrMatch", ["10.0.0.1", "10.0.0.0/8", "garbage"], False, True),  # later CIDRs are not parsed
    ("cidrMatch", ["8.1.2.3", "8.0.0.0/+8"], False, True),  # Integer.parseInt takes a sign
    # ------------------------------------------------------------------ concat
    ("concat", [5, "::", "wininit.exe", "::", 3], False, "5::wininit.exe::3"),  # concatEquals1
    ("concat", [1], False, "1"),  # concatEquals2
    ("concat", [5, ":", "wininit.exe", 3], False, "5:wininit.exe3"),  # concat1
    ("concat", ["smss.exe", "System"], False, "smss.exeSystem"),  # concatWithCondition1
    ("concat", ["csrss.exe", None], False, None),  # concatWithCondition2
    ("concat", ["smss.exe", None, None], False, None),  # concatWithCondition3
    ("concat", [None, None], False, None),  # concatWithCondition4
    ("concat", ["1.2.4", ""], False, "1.2.4"),  # sequenceWithVersionConcat
    ("concat", ["process is ", "regsvr32.exe"], False, "process is regsvr32.exe"),
    ("concat", ["regsvr32.exe", " ", 42], False, "regsvr32.exe 42"),
    ("concat", ["regsvr32.exe", " ", 42.5], False, "regsvr32.exe 42.5"),
    ("concat", ["regsvr32.exe", " ", True], False, "regsvr32.exe true"),
    ("concat", ["regsvr32.exe"], False, "regsvr32.exe"),
    ("concat", [None, "regsvr32.exe"], False, None),
    ("concat", [None], False, None),
    ("concat", [1.0, 1e10, 1e-05, 0.001, -0.0, False], False, "1.01.0E101.0E-50.001-0.0false"),
    ("concat", [NAN, "/", INF, "/", -INF], False, "NaN/Infinity/-Infinity"),
    # ------------------------------------------------------------------ endsWith
    ("endsWith", ["regsvr32.exe", ".exe"], False, True),
    ("endsWith", ["regsvr32.exe", ".EXE"], False, False),
    ("endsWith", ["regsvr32.exe", ".dll"], False, False),
    ("endsWith", ["", ""], False, True),
    ("endsWith", ["regsvr32.exe", ".EXE"], True, True),
    ("endsWith", ["ntdll.dll", "regsvr32.exe"], False, False),
    ("endsWith", ["regsvr32.exe", None], False, None),
    ("endsWith", ["", None], False, None),
    ("endsWith", [None, ".exe"], False, None),
    ("endsWith", [None, None], False, None),
    ("endsWith", ["explorer.exe", "lorer.exe"], False, True),  # endsWith1
    ("endsWith", ["explorer.exe", "loREr.exe"], True, True),  # endsWithCaseInsensitive
    ("endsWith", ["EXPLORER.EXE-854AF04C.pf", "loREr.exe"], True, False),
    # ------------------------------------------------------------------ indexOf
    ("indexOf", [DOMAIN, "d"], False, 3),
    ("indexOf", [DOMAIN, "D"], False, None),
    ("indexOf", [DOMAIN, "."], False, 9),
    ("indexOf", [DOMAIN, ".", 9], False, 9),
    ("indexOf", [DOMAIN, ".", 10], False, 17),
    ("indexOf", [DOMAIN, ".", -6], False, 9),
    ("indexOf", [DOMAIN, "D"], True, 3),
    ("indexOf", ["", ""], False, 0),
    ("indexOf", [DOMAIN, ""], False, 0),
    ("indexOf", [DOMAIN, "", 9], False, 9),
    ("indexOf", [DOMAIN, "", 10], False, 10),
    ("indexOf", [DOMAIN, "", -6], False, 0),
    ("indexOf", [DOMAIN, "", 30], False, 21),  # Java: an empty substring past the end is found at the end
    ("indexOf", [DOMAIN, "z"], False, None),
    ("indexOf", [DOMAIN, "z", 9], False, None),
    ("indexOf", [DOMAIN, ".", 30], False, None),
    ("indexOf", [None, ".", 9], False, None),
    ("indexOf", [DOMAIN, None, 9], False, None),
    ("indexOf", [DOMAIN, ".", None], False, 9),  # the processor reads a null start as 0
    ("indexOf", ["foobarbar", "r", None], True, 5),
    ("indexOf", ["foobaRbar", "r", None], True, 5),
    ("indexOf", ["foobar", "Foo", None], True, 0),
    ("indexOf", ["foo", "foobar", None], True, None),
    ("indexOf", ["foo", "oO", None], True, 1),
    ("indexOf", ["", "bar", 1], True, None),
    ("indexOf", ["foobarbar", "R", 5], True, 5),
    ("indexOf", ["foobar", "O", 2], True, 2),
    ("indexOf", ["foobar", "O", 3], True, None),
    ("indexOf", ["foobarbaz", "ba", 4], True, 6),
    ("indexOf", ["foobaRbar", "r", None], False, 8),
    ("indexOf", ["foobARbar", "AR", None], False, 4),
    ("indexOf", ["foo", "oO", None], False, None),
    ("indexOf", ["foobarbar", "R", 5], False, None),
    ("indexOf", ["foobarbaz", "ba", 4], False, 6),
    ("indexOf", ["explorer.exe", "plore"], True, 2),  # indexOfCaseInsensitive
    ("indexOf", ["explorer.exe", ".pf"], True, None),
    ("indexOf", ["explorer.exe", "explorer."], False, 0),  # indexOf1: ... > 0 fails
    ("indexOf", ["explorer.exe", "plore", 100], False, None),
    ("indexOf", ["explorer.exe", "plorer.", 0], False, 2),  # indexOf2
    ("indexOf", ["EXPLORER.EXE-854AF04C.pf", "plorer.", 0], False, None),
    ("indexOf", ["EXPLORER.EXE-854AF04C.pf", "plorer.", 0], True, 2),  # indexOf3
    ("indexOf", ["explorer.exe", "plorer.", 4], False, None),  # indexOf6
    ("indexOf", ["explorer.exe", "thing that never happened"], False, None),  # indexOf7
    ("indexOf", ["EXPLORER.EXE-854AF04C.pf", "pLOrer.", 2], True, 2),  # indexOf8
    ("indexOf", ["explorer.exe", "explorer.", 0], True, 0),  # indexOf11
    ("indexOf", ["foobar", "o", 1.9], False, 1),  # Number.intValue() truncates
    ("indexOf", ["foobar", "o", (1 << 32) + 2], False, 2),  # ... and wraps a long to 32 bits
    ("indexOf", ["😀ab", "a"], False, 2),  # UTF-16 code units
    # ------------------------------------------------------------------ length
    ("length", ["explorer.exe"], False, 12),
    ("length", ["start explorer.exe"], False, 18),
    ("length", [""], False, 0),
    ("length", [None], False, None),
    ("length", ["é"], False, 1),
    ("length", ["😀"], False, 2),
    ("length", ["System Idle Process"], False, 19),
    # ------------------------------------------------------------------ number
    ("number", ["1337"], False, 1337),
    ("number", ["42.5"], False, 42.5),
    ("number", ["deadbeef", 16], False, 3735928559),
    ("number", ["0xdeadbeef"], False, 3735928559),
    ("number", ["0xdeadbeef", 16], False, 3735928559),
    ("number", ["+1337"], False, 1337),
    ("number", ["-1337"], False, -1337),
    ("number", ["  1337  "], False, 1337.0),  # Long.valueOf fails on blanks, Double.valueOf trims
    ("number", [None], False, None),
    ("number", [None, 16], False, None),
    ("number", ["0xdeadbeef", None], False, 3735928559),
    ("number", ["1337", None], False, 1337),
    ("number", ["5"], False, 5),  # stringNumberConversion1
    ("number", ["0x32", 16], False, 50),  # stringNumberConversion2
    ("number", ["32", 16], False, 50),  # stringNumberConversion3
    ("number", ["17"], False, 17),  # numberStringConversion2
    ("number", ["17", None], False, 17),  # numberStringConversion3
    ("number", ["17", 10], False, 17),  # numberStringConversion4
    ("number", ["31", 13], False, 40),  # numberStringEquality
    ("number", ["11", 16], False, 17),  # numberStringConversion5
    ("number", ["1e3"], False, 1000.0),
    ("number", ["-5e-2", 10], False, -0.05),
    ("number", [".5"], False, 0.5),
    ("number", ["5."], False, 5.0),
    ("number", ["1.5f"], False, 1.5),
    ("number", ["2d"], False, 2.0),
    ("number", ["NaN"], False, NAN),
    ("number", ["-Infinity"], False, -INF),
    ("number", ["1e400"], False, INF),
    ("number", ["0x1p3", 10], False, 8.0),  # Java hex floating-point literal
    ("number", ["9223372036854775807"], False, LONG_MAX),
    ("number", ["9223372036854775808"], False, 9.223372036854776e18),  # past long: parsed as a double
    ("number", ["-9223372036854775808"], False, LONG_MIN),
    ("number", ["777", 8], False, 511),
    ("number", ["-ff", 16], False, -255),
    ("number", ["FF", 16], False, 255),
    ("number", ["z", 36], False, 35),
    ("number", ["101", 2], False, 5),
    ("number", ["٣٤"], False, 34),  # Character.digit accepts any Unicode decimal digit
    # ------------------------------------------------------------------ startsWith
    ("startsWith", ["regsvr32.exe", "regsvr32"], False, True),
    ("startsWith", ["regsvr32.exe", "Regsvr32"], False, False),
    ("startsWith", ["regsvr32.exe", "explorer"], False, False),
    ("startsWith", ["", ""], False, True),
    ("startsWith", ["regsvr32.exe", "Regsvr32"], True, True),
    ("startsWith", ["regsvr32.exe", None], False, None),
    ("startsWith", ["", None], False, None),
    ("startsWith", [None, "regsvr32"], False, None),
    ("startsWith", [None, None], False, None),
    ("startsWith", ["explorer.exe", "explorer."], False, True),  # startsWithCaseSensitive
    ("startsWith", ["EXPLORER.EXE-854AF04C.pf", "explorer."], False, False),
    ("startsWith", ["EXPLORER.EXE-854AF04C.pf", "explorer."], True, True),  # startsWithCaseInsensitive1
    ("startsWith", ["explorer.exe", "exploRER."], True, True),  # startsWithCaseInsensitive2
    ("startsWith", ["explorer.exe", "expLORER.ExE"], True, True),  # startsWithCaseInsensitive3
    ("startsWith", ["EXPLORER.EXE-854AF04C.pf", "expLORER.ExE"], True, True),
    ("startsWith", ["explorer.exeaaaaaaaa", "explorer.exe"], False, True),  # endsWith2
    ("startsWith", ["explorer.exeaaaaaaaa", "EXPLORER.EXE-854AF04C.pf"], False, False),
    ("startsWith", ["explorer.exeaAAAA", "EXPLORER.exe"], True, True),  # endsWithAndCondition
    ("startsWith", ["explorer.exeaAAAA", "EXPLORER.exe"], False, False),
    # ------------------------------------------------------------------ string
    ("string", [42], False, "42"),
    ("string", [42.5], False, "42.5"),
    ("string", ["regsvr32.exe"], False, "regsvr32.exe"),
    ("string", [True], False, "true"),  # stringCidrMatch2: string(cidrMatch(...)) : "true"
    ("string", [False], False, "false"),
    ("string", [None], False, None),
    ("string", [1], False, "1"),  # numberStringConversion1
    ("string", [100.0], False, "100.0"),
    ("string", [1e21], False, "1.0E21"),
    ("string", [12345678.9], False, "1.23456789E7"),
    ("string", [9999999.0], False, "9999999.0"),
    ("string", [0.0001], False, "1.0E-4"),
    ("string", [-2.5e-10], False, "-2.5E-10"),
    ("string", [0.1 + 0.2], False, "0.30000000000000004"),
    ("string", [LONG_MIN], False, "-9223372036854775808"),
    # ------------------------------------------------------------------ stringContains
    ("stringContains", ["start regsvr32.exe", "regsvr32"], False, True),
    ("stringContains", ["start regsvr32.exe", "Regsvr32"], False, False),
    ("stringContains", ["start regsvr32.exe", "start "], False, True),
    ("stringContains", ["start regsvr32.exe", "explorer"], False, False),
    ("stringContains", ["start regsvr32.exe", "Regsvr32"], True, True),  # the reference says false: a typo
    ("stringContains", ["start regsvr32.exe", "regsvr32.exe"], False, True),
    ("stringContains", ["", ""], False, False),
    ("stringContains", ["start regsvr32.exe", ""], False, False),
    ("stringContains", ["", "x"], False, False),
    ("stringContains", [None, "regsvr32"], False, None),
    ("stringContains", [None, None], False, None),
    ("stringContains", ["ABCDEFGHIexplorer.exeJKLMNOP", "explorer.exe"], False, True),  # stringContains2
    ("stringContains", ["ABCDEFGHIexplorer.exeJKLMNOP", "EXPLORER.EXE-854AF04C.pf"], False, False),
    # ------------------------------------------------------------------ substring (Python slices)
    ("substring", ["start regsvr32.exe", 6], False, "regsvr32.exe"),
    ("substring", ["start regsvr32.exe", 0, 5], False, "start"),
    ("substring", ["start regsvr32.exe", 6, 14], False, "regsvr32"),
    ("substring", ["start regsvr32.exe", -4], False, ".exe"),
    ("substring", ["start regsvr32.exe", -4, -1], False, ".ex"),
    ("substring", ["abcdefghij", 1, 7], False, "bcdefg"),
    ("substring", ["abcdefghij", -5, -1], False, "fghi"),
    ("substring", ["abcdefghij", -15, -11], False, ""),
    ("substring", ["abcdefghij", 11, 14], False, ""),
    ("substring", ["abcdefghij", -20, -11], False, ""),
    ("substring", ["abcdefghij", -15, -1], False, "abcdefghi"),
    ("substring", ["abcdefghij", 0, 20], False, "abcdefghij"),
    ("substring", ["abcdefghij", 3, 3], False, ""),
    ("substring", ["abcdefghij", 5, 2], False, ""),
    ("substring", [None, 0, 0], False, None),
    ("substring", ["", 2], False, ""),
    ("substring", ["abc", None], False, "abc"),  # a null start returns the source
    ("substring", ["abc", 1, None], False, "bc"),
    ("substring", ["abcdef", 1.7, 3.2], False, "bc"),
    ("substring", ["explorer.exe", 0, 4], False, "expl"),  # substring1
    ("substring", ["explorer.exe", 1, 3], False, "xp"),  # substring2
    ("substring", ["EXPLORER.EXE-854AF04C.pf", 1, 3], False, "XP"),  # substring3 (with `:`)
    ("substring", ["explorer.exe", -4], False, ".exe"),  # substring4
    ("substring", ["explorer.exe", -4, -1], False, ".ex"),  # substring5
    ("substring", ["a😀b", 1, 3], False, "😀"),  # UTF-16 code units
    ("substring", ["a😀b", 1, 2], False, "\ud83d"),  # ... so a pair can be split, as in Java
    ("substring", ["a😀b", -1], False, "b"),
    # ------------------------------------------------------------------ wildcard (legacy)
    ("wildcard", ["explorer.exe", "*.exe"], False, True),
    ("wildcard", ["explorer.exe", "*.EXE"], False, False),
    ("wildcard", ["explorer.exe", "*.EXE"], True, True),
    ("wildcard", ["a", "b", "a"], False, True),
    ("wildcard", ["a", "b", "c"], False, False),
    ("wildcard", [None, "*"], False, None),
]

# (function, args, case_insensitive, message the FunctionError carries)
ERRORS: list[tuple[str, list[Value], bool, str]] = [
    ("add", [LONG_MAX, 1], False, "long overflow"),
    ("subtract", [LONG_MIN, 1], False, "long overflow"),
    ("multiply", [1 << 62, 2], False, "long overflow"),
    ("multiply", [LONG_MIN, -1], False, "long overflow"),
    ("add", ["1", 2], False, "A number is required; received [1]"),
    ("add", [True, 1], False, "A number is required; received [true]"),
    ("subtract", [1, "x"], False, "A number is required; received [x]"),
    ("divide", [1, 0], False, "/ by zero"),
    ("divide", [0, 0], False, "/ by zero"),
    ("modulo", [1, 0], False, "/ by zero"),
    ("modulo", [1.5, False], False, "A number is required; received [false]"),
    ("between", ["abc", None, "c"], False, "A string/char is required; received [null]"),
    ("between", ["abc", "a", None], False, "A string/char is required; received [null]"),
    ("between", ["abc", "a", "c", None], False, "A boolean is required; received [null]"),
    ("between", ["abc", "a", "c", 1], False, "A boolean is required; received [1]"),
    ("between", [5, "a", "c"], False, "A string/char is required; received [5]"),
    ("between", ["xa b", "b", "a", True], False, "begin 4, end 1, length 4"),
    ("cidrMatch", ["foo", "10.0.0.0/8"], False, "'foo' is not an IP string literal."),
    ("cidrMatch", ["010.0.0.1", "10.0.0.0/8"], False, "is not an IP string literal"),
    ("cidrMatch", ["10.0.0.1", "10.0.0.0/33"], False, "Illegal prefix length [33]"),
    ("cidrMatch", ["::1", "::/129"], False, "Illegal prefix length [129]"),
    ("cidrMatch", ["10.0.0.1", "10.0.0.0/-1"], False, "Illegal prefix length [-1]"),
    ("cidrMatch", ["10.0.0.1", "::ffff:10.0.0.0/104"], False, "CIDR notation is not allowed"),
    ("cidrMatch", ["10.0.0.1", "::ffff:0:0/96"], False, "CIDR notation is not allowed"),
    ("cidrMatch", ["10.0.0.1", "+8.0.0.0/8"], False, "'+8.0.0.0' is not an IP string literal."),
    ("cidrMatch", ["10.0.0.1", "10.0.0.0/x"], False, 'For input string: "x"'),
    ("cidrMatch", ["10.0.0.1", "10.0.0.0/"], False, "Expected [ip/prefix]"),
    ("cidrMatch", ["10.0.0.1", "10.0.0.0/8/8"], False, "Expected [ip/prefix]"),
    ("cidrMatch", ["10.0.0.1", "nope"], False, "'nope' is not an IP string literal."),
    ("cidrMatch", ["10.0.0.1", None], False, "A string/char is required; received [null]"),
    ("cidrMatch", [1234, "10.0.0.0/8"], False, "A string/char is required; received [1234]"),
    ("endsWith", [5, "x"], False, "A string/char is required; received [5]"),
    ("endsWith", ["x", 5], False, "A string/char is required; received [5]"),
    ("indexOf", [5, "foo"], False, "A string/char is required; received [5]"),
    ("indexOf", ["bar", False, 2], False, "A string/char is required; received [false]"),
    ("indexOf", ["bar", "a", "1"], False, "A number is required; received [1]"),
    ("indexOf", ["bar", "a", True], False, "A number is required; received [true]"),
    ("length", [5], False, "A string/char is required; received [5]"),
    ("length", [True], False, "A string/char is required; received [true]"),
    ("number", ["", None], False, "Unable to convert [] to number of base [10]"),
    ("number", ["", 16], False, "Unable to convert [] to number of base [16]"),
    ("number", ["foo", None], False, "Unable to convert [foo] to number of base [10]"),
    ("number", ["foo", 16], False, "Unable to convert [foo] to number of base [16]"),
    ("number", ["1.2.3.4", 10], False, "Unable to convert [1.2.3.4] to number of base [10]"),
    ("number", ["1.2.3.4", 16], False, "Unable to convert [1.2.3.4] to number of base [16]"),
    ("number", ["1.0", 16], False, "Unable to convert [1.0] to number of base [16]"),
    ("number", ["1.0", 7], False, "Unable to convert [1.0] to number of base [7]"),
    ("number", ["-0x1", 16], False, "Unable to convert [-0x1] to number of base [16]"),
    ("number", ["0x10", 10], False, "Unable to convert [0x10] to number of base [10]"),
    ("number", ["0X10"], False, "Unable to convert [0X10] to number of base [10]"),  # only "0x" is detected
    ("number", [" 12", 16], False, "Unable to convert [ 12] to number of base [16]"),
    ("number", ["1_000"], False, "Unable to convert [1_000] to number of base [10]"),
    ("number", ["1e"], False, "Unable to convert [1e] to number of base [10]"),
    ("number", ["infinity"], False, "Unable to convert [infinity] to number of base [10]"),
    ("number", ["+"], False, "Unable to convert [+] to number of base [10]"),
    ("number", ["8", 8], False, "Unable to convert [8] to number of base [8]"),
    ("number", ["1", 37], False, "Unable to convert [1] to number of base [37]"),
    ("number", ["1", 1], False, "Unable to convert [1] to number of base [1]"),
    (
        "number",
        ["8000000000000000", 16],
        False,
        "Unable to convert [8000000000000000] to number of base [16]",
    ),
    ("number", [False, None], False, "A string/char is required; received [false]"),
    ("number", [1.0, None], False, "A string/char is required; received [1.0]"),
    ("number", [1, None], False, "A string/char is required; received [1]"),
    ("number", ["1", "foo"], False, "An integer base is required; received [foo]"),
    ("number", ["1", 1.0], False, "An integer base is required; received [1.0]"),
    ("number", ["1", False], False, "An integer base is required; received [false]"),
    ("number", ["1", 1 << 31], False, "An integer base is required; received [2147483648]"),
    ("startsWith", [5, "x"], False, "A string/char is required; received [5]"),
    ("stringContains", ["abc", None], False, "A string/char is required; received [null]"),
    ("stringContains", ["abc", 5], True, "A string/char is required; received [5]"),
    ("stringContains", [5, "a"], False, "A string/char is required; received [5]"),
    ("substring", [5, 1], False, "A string/char is required; received [5]"),
    ("substring", ["abc", "1"], False, "A number is required; received [1]"),
    ("substring", ["abc", 1, "2"], False, "A number is required; received [2]"),
    ("substring", ["abc", True], False, "A number is required; received [true]"),
    ("wildcard", ["a", None], False, "A string/char is required; received [null]"),
    ("wildcard", [5, "*"], False, "A string/char is required; received [5]"),
]


def same(a: Value, b: Value) -> bool:
    """Equal in value and in type (2 is not 2.0, 1 is not True); NaN equals NaN."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def _id(case: Case) -> str:
    name, args, ci, _ = case
    return f"{name}{'~' if ci else ''}({', '.join(map(repr, args))})"[:100]


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_function(case: Case) -> None:
    name, args, ci, expected = case
    got = call(name, args, ci)
    assert same(got, expected), f"{_id(case)} = {got!r}, expected {expected!r}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_impl_matches_call(case: Case) -> None:
    name, args, ci, expected = case
    spec = lookup(name)
    assert spec is not None
    assert same(spec.impl(args, ci), expected)


@pytest.mark.parametrize(("name", "args", "ci", "message"), ERRORS, ids=[_id((*e[:3], None)) for e in ERRORS])
def test_function_error(name: str, args: list[Value], ci: bool, message: str) -> None:
    with pytest.raises(FunctionError, match=re.escape(message)):
        call(name, args, ci)


def test_function_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="by zero"):
        call("divide", [1, 0])


# ---------------------------------------------------------------------- multi-valued arguments


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("length", [["ab", "abc"]], [2, 3]),
        ("startsWith", [["tag1", "tag2"], "tag2"], [False, True]),
        ("concat", [["a", "b"], ["x", "y"]], ["ax", "ay", "bx", "by"]),
        ("add", [[1, 2], 10], [11, 12]),
        ("string", [[1, True]], ["1", "true"]),  # 1 and True are different values
        ("length", [[]], None),  # an empty field is one null evaluation
        ("length", [[None]], None),
        ("length", [["ab", None]], 2),  # nulls in a list are not values; one value left is a scalar
        ("length", [["a", "a"]], 1),  # duplicates are dropped (doc values are a set)
        ("length", [["ab", ["abc"]]], [2, 3]),  # nested lists are flattened
        ("startsWith", [["tag1", None, None], "tag"], True),  # like extra.data's optional_tags
        ("concat", [[], "x"], None),
        ("indexOf", [["abc", "cab"], "a"], [0, 1]),
        ("cidrMatch", [["10.0.0.1", "192.168.0.1"], "10.0.0.0/8"], [True, False]),
    ],
)
def test_multi_valued_arguments(name: str, args: list[Value], expected: Value) -> None:
    assert same(call(name, args), expected)


def test_multi_valued_results_compose() -> None:
    tags: Value = ["tag1", "tag22"]
    inner = call("concat", [tags, "!"])
    assert inner == ["tag1!", "tag22!"]
    assert call("length", [inner]) == [5, 6]
    assert call("length", [inner], False) == FUNCTIONS["length"].impl([inner], False)


def test_multi_valued_errors_propagate() -> None:
    with pytest.raises(FunctionError, match="received \\[5\\]"):
        call("length", [["ok", 5]])


# ---------------------------------------------------------------------- registry


def test_names_are_case_insensitive() -> None:
    spec = lookup("startsWith")
    assert spec is not None
    assert lookup("startswith") is spec
    assert lookup("STARTSWITH") is spec
    assert lookup("StartsWith") is spec
    # test_extra.toml sequenceWithVersionConcat: CONCAT(version, "") == "1.2.4"
    assert lookup("CONCAT") is lookup("concat")
    assert call("CONCAT", ["1.2.4", ""]) == "1.2.4"
    assert lookup("nope") is None


def test_registry_contents() -> None:
    assert set(FUNCTIONS) == {
        "add",
        "between",
        "cidrmatch",
        "concat",
        "divide",
        "endswith",
        "indexof",
        "length",
        "modulo",
        "multiply",
        "number",
        "startswith",
        "string",
        "stringcontains",
        "substring",
        "subtract",
        "wildcard",
    }
    for key, spec in FUNCTIONS.items():
        assert isinstance(spec, FunctionSpec)
        assert key == spec.name.lower()
        assert spec.arg_kinds
        assert set(spec.arg_kinds) <= {"string", "number", "boolean", "ip", "any"}
        assert spec.returns in {"string", "number", "boolean", "any"}
        assert spec.max_args is None or spec.max_args >= spec.min_args
        assert spec.max_args is None or len(spec.arg_kinds) <= spec.max_args
    assert {s.name for s in FUNCTIONS.values() if s.case_insensitive_ok} == {
        "between",
        "endsWith",
        "indexOf",
        "startsWith",
        "stringContains",
        "wildcard",
    }
    assert {"wildcard"} == LEGACY_FUNCTIONS


@pytest.mark.parametrize(
    ("name", "count", "ok"),
    [
        ("add", 2, True),
        ("add", 1, False),
        ("add", 3, False),
        ("between", 3, True),
        ("between", 4, True),
        ("between", 5, False),
        ("between", 2, False),
        ("cidrMatch", 1, False),
        ("cidrMatch", 2, True),
        ("cidrMatch", 9, True),
        ("concat", 0, False),
        ("concat", 1, True),
        ("concat", 7, True),
        ("indexOf", 2, True),
        ("indexOf", 3, True),
        ("indexOf", 4, False),
        ("length", 1, True),
        ("length", 2, False),
        ("number", 1, True),
        ("number", 2, True),
        ("number", 3, False),
        ("string", 1, True),
        ("substring", 1, False),
        ("substring", 2, True),
        ("substring", 3, True),
        ("substring", 4, False),
        ("wildcard", 1, False),
        ("wildcard", 3, True),
    ],
)
def test_arity(name: str, count: int, ok: bool) -> None:
    if ok:
        assert validate(name, count).name == name
    else:
        with pytest.raises(FunctionError, match=r"error building \[" + name):
            validate(name, count)


def test_call_checks_name_arity_and_case_form() -> None:
    with pytest.raises(FunctionError, match=r"Unknown function \[nope\]"):
        call("nope", [])
    with pytest.raises(FunctionError, match="expects exactly 1 argument"):
        call("length", [])
    with pytest.raises(FunctionError, match=r"expects 3 to 4 argument\(s\), got 5"):
        call("between", ["a", "b", "c", True, True])
    with pytest.raises(FunctionError, match=r"Function \[length\] does not support case-\(in\)sensitivity"):
        call("length", ["a"], True)
    with pytest.raises(FunctionError, match="does not support"):
        validate("concat", 2, case_insensitive=True)
    assert validate("STARTSWITH", 2, case_insensitive=True).name == "startsWith"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-12, "-12"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (0.001, "0.001"),
        (0.000999, "9.99E-4"),
        (1e7, "1.0E7"),
        (9999999.5, "9999999.5"),
        (123456789012.0, "1.23456789012E11"),
        (1.7976931348623157e308, "1.7976931348623157E308"),
        (5e-324, "4.9E-324"),  # Double.MIN_VALUE: Java considers two digits when one would do
        (1e-323, "9.9E-324"),
        (2e-323, "2.0E-323"),
        (1e23, "1.0E23"),
        (NAN, "NaN"),
        (INF, "Infinity"),
        (-INF, "-Infinity"),
        ("x", "x"),
        (["a", 1], "[a, 1]"),
    ],
)
def test_java_string(value: Value, text: str) -> None:
    assert java_string(value) == text


# ---------------------------------------------------------------------- the spec corpus, function by function

CORPUS = default_corpus()
DATASET = CORPUS / "data" / "endgame-140.derived.json"

Event = dict[str, Value]
Pred = Callable[[Event], Value]


def _truthy(v: Value) -> bool:
    return v is True or (isinstance(v, list) and any(x is True for x in v))


def _ieq(v: Value, text: str) -> bool:
    """``v : "text"`` without wildcards: case-insensitive equality."""
    return isinstance(v, str) and v.lower() == text.lower()


def _wild(v: Value, pattern: str, ci: bool) -> bool:
    return isinstance(v, str) and wildcard_match(v, pattern, case_insensitive=ci)


def _f(e: Event, key: str) -> Value:
    return e.get(key)


def _fn(name: str, *args: Value, ci: bool = False) -> Value:
    return call(name, list(args), ci)


def _id_of(e: Event) -> int:
    v = e[_ID]
    assert isinstance(v, int)
    return v


def _pos(v: Value) -> bool:
    return isinstance(v, int) and v > 0


def _op0(e: Event) -> bool:
    return e.get("opcode") == 0


_ID = "serial_event_id"
_NET = ("10.6.48.157/8",)
_REGEXES = (re.compile(".*?net[1]?  localgroup.*?"), re.compile(".*? myappserver.py .*?"))

# (query name, event category or None for `any`, the query's condition, expected ids)
CORPUS_CASES: list[tuple[str, str | None, Pred, list[int]]] = [
    # additional_test_queries.toml
    (
        "betweenAdditional1",
        "file",
        lambda e: _ieq(_fn("between", _f(e, "file_path"), "dev", ".json", False), "\\TestLogs\\something"),
        [95],
    ),
    (
        "betweenAdditional2",
        "file",
        lambda e: _ieq(_fn("between", _f(e, "file_path"), "dev", ".json", True), "\\TestLogs\\something"),
        [95],
    ),
    (
        "stringCidrMatch1",
        "network",
        lambda e: _fn("cidrMatch", _f(e, "source_address"), *_NET) is True,
        [75304, 75305],
    ),
    (
        "stringCidrMatch2",
        "network",
        lambda e: _ieq(_fn("string", _fn("cidrMatch", _f(e, "source_address"), *_NET)), "true"),
        [75304, 75305],
    ),
    (
        "cidrMatchAdditional3",
        "network",
        lambda e: _fn("cidrMatch", _f(e, "source_address"), "192.168.0.0/16") is True,
        [],
    ),
    (
        "cidrMatchAdditional4",
        "network",
        lambda e: _fn("cidrMatch", _f(e, "source_address"), "192.168.0.0/16", *_NET) is True,
        [75304, 75305],
    ),
    (
        "cidrMatchAdditional5",
        "network",
        lambda e: _fn("cidrMatch", _f(e, "source_address"), "0.0.0.0/0") is True,
        [75304, 75305],
    ),
    (
        "concatEquals1",
        "process",
        lambda e: _ieq(
            _fn("concat", _f(e, _ID), "::", _f(e, "process_name"), "::", _f(e, "opcode")), "5::wininit.exe::3"
        ),
        [5],
    ),
    ("concatEquals2", "process", lambda e: _ieq(_fn("concat", _f(e, _ID)), "1"), [1]),
    (
        "concatWithCondition1",
        "process",
        lambda e: (
            _id_of(e) < 5 and _fn("concat", _f(e, "process_name"), _f(e, "parent_process_name")) is not None
        ),
        [2, 3],
    ),
    (
        "concatWithCondition2",
        "process",
        lambda e: (
            _id_of(e) < 5 and _fn("concat", _f(e, "process_name"), _f(e, "parent_process_name")) is None
        ),
        [1, 4],
    ),
    (
        "concatWithCondition3",
        "process",
        lambda e: _id_of(e) < 5 and _fn("concat", _f(e, "process_name"), None, None) is None,
        [1, 2, 3, 4],
    ),
    (
        "concatWithCondition4",
        "process",
        lambda e: _id_of(e) < 5 and _fn("concat", _f(e, "parent_process_name"), None) is None,
        [1, 2, 3, 4],
    ),
    ("numberStringConversion1", "process", lambda e: _ieq(_fn("string", _f(e, _ID)), "1"), [1]),
    ("numberStringConversion2", None, lambda e: _fn("number", _fn("string", _f(e, _ID))) == 17, [17]),
    ("numberStringConversion3", None, lambda e: _fn("number", _fn("string", _f(e, _ID)), None) == 17, [17]),
    ("numberStringConversion4", None, lambda e: _fn("number", _fn("string", _f(e, _ID)), 10) == 17, [17]),
    (
        "numberStringEquality",
        None,
        lambda e: _fn("number", _fn("string", _f(e, _ID)), 13) == _fn("number", "31", 13),
        [31],
    ),
    ("numberStringConversion5", None, lambda e: _fn("number", _fn("string", _f(e, _ID)), 16) == 17, [11]),
    ("moduloEqualsField", "process", lambda e: _fn("modulo", 11, 10) == _f(e, _ID), [1]),
    ("seqSingleArg", "process", lambda e: _wild(_fn("string", _f(e, _ID)), "1", True), [1]),
    (
        "seqSingleArgPattern",
        "process",
        lambda e: _wild(_fn("string", _f(e, _ID)), "1*", True),
        [1, *range(10, 20)],
    ),
    (
        "seqSingleArgPatternQuestionMark",
        "process",
        lambda e: _wild(_fn("string", _f(e, _ID)), "1?", True),
        list(range(10, 20)),
    ),
    ("likeWithScript", "process", lambda e: _wild(_fn("string", _f(e, _ID)), "1", False), [1]),
    (
        "likeScriptWithPattern",
        "process",
        lambda e: _wild(_fn("string", _f(e, _ID)), "1*", False),
        [1, *range(10, 20)],
    ),
    (
        "likeScriptWithQuestionPattern",
        "process",
        lambda e: _wild(_fn("string", _f(e, _ID)), "1?", False),
        list(range(10, 20)),
    ),
    (
        "regexWithSubstring",
        "process",
        lambda e: any(
            isinstance(s := _fn("substring", _f(e, "command_line"), 5), str) and r.fullmatch(s) is not None
            for r in _REGEXES
        ),
        [50, 98],
    ),
    # test_queries.toml
    (
        "startsWithCaseSensitive",
        "file",
        lambda e: _op0(e) and _fn("startsWith", _f(e, "file_name"), "explorer.") is True,
        [88],
    ),
    (
        "startsWithCaseInsensitive1",
        "file",
        lambda e: _op0(e) and _fn("startsWith", _f(e, "file_name"), "explorer.", ci=True) is True,
        [88, 92],
    ),
    (
        "startsWithCaseInsensitive2",
        "file",
        lambda e: _op0(e) and _fn("startsWith", _f(e, "file_name"), "exploRER.", ci=True) is True,
        [88, 92],
    ),
    (
        "startsWithCaseInsensitive3",
        "file",
        lambda e: _op0(e) and _fn("startsWith", _f(e, "file_name"), "expLORER.ExE", ci=True) is True,
        [88, 92],
    ),
    (
        "endsWith1",
        "file",
        lambda e: _op0(e) and _fn("endsWith", _f(e, "file_name"), "lorer.exe") is True,
        [88],
    ),
    (
        "endsWithCaseInsensitive",
        "file",
        lambda e: _op0(e) and _fn("endsWith", _f(e, "file_name"), "loREr.exe", ci=True) is True,
        [88],
    ),
    (
        "endsWith2",
        "file",
        lambda e: _op0(e) and _fn("startsWith", "explorer.exeaaaaaaaa", _f(e, "file_name")) is True,
        [88],
    ),
    (
        "endsWithAndCondition",
        "file",
        lambda e: (
            _op0(e)
            and _f(e, _ID) == 88
            and _fn("startsWith", "explorer.exeaAAAA", "EXPLORER.exe", ci=True) is True
        ),
        [88],
    ),
    (
        "stringContains2",
        "file",
        lambda e: (
            _op0(e) and _fn("stringContains", "ABCDEFGHIexplorer.exeJKLMNOP", _f(e, "file_name")) is True
        ),
        [88],
    ),
    (
        "indexOfCaseInsensitive",
        "file",
        lambda e: (
            _op0(e)
            and _fn("indexOf", _f(e, "file_name"), "plore", ci=True) == 2
            and _fn("indexOf", _f(e, "file_name"), ".pf", ci=True) is None
        ),
        [88],
    ),
    (
        "indexOf1",
        "file",
        lambda e: (
            _op0(e)
            and _pos(_fn("indexOf", _f(e, "file_name"), "explorer."))
            and _pos(_fn("indexOf", _f(e, "file_name"), "plore", 100))
        ),
        [],
    ),
    ("indexOf2", "file", lambda e: _op0(e) and _fn("indexOf", _f(e, "file_name"), "plorer.", 0) == 2, [88]),
    (
        "indexOf3",
        "file",
        lambda e: _op0(e) and _fn("indexOf", _f(e, "file_name"), "plorer.", 0, ci=True) == 2,
        [88, 92],
    ),
    (
        "indexOf4",
        "file",
        lambda e: _op0(e) and _fn("indexOf", _f(e, "file_name"), "plorer.", 2) is not None,
        [88],
    ),
    (
        "indexOf5",
        "file",
        lambda e: _op0(e) and _fn("indexOf", _f(e, "file_name"), "plorer.", 2, ci=True) is not None,
        [88, 92],
    ),
    (
        "indexOf6",
        "file",
        lambda e: _op0(e) and _fn("indexOf", _f(e, "file_name"), "plorer.", 4) is not None,
        [],
    ),
    (
        "indexOf7",
        "file",
        lambda e: _op0(e) and _fn("indexOf", _f(e, "file_name"), "thing that never happened") is not None,
        [],
    ),
    (
        "indexOf8",
        "file",
        lambda e: _op0(e) and _fn("indexOf", _f(e, "file_name"), "pLOrer.", 2, ci=True) == 2,
        [88, 92],
    ),
    ("indexOf9", "file", lambda e: _op0(e) and _fn("indexOf", _f(e, "file_name"), "plorer.", 2) == 2, [88]),
    (
        "indexOf10",
        "file",
        lambda e: _op0(e) and _fn("indexOf", _f(e, "file_name"), "explorer.", 0) == 0,
        [88],
    ),
    (
        "indexOf11",
        "file",
        lambda e: _op0(e) and _fn("indexOf", _f(e, "file_name"), "explorer.", 0, ci=True) == 0,
        [88, 92],
    ),
    (
        "substring1",
        "file",
        lambda e: _f(e, _ID) == 88 and _ieq(_fn("substring", _f(e, "file_name"), 0, 4), "expl"),
        [88],
    ),
    ("substring2", "file", lambda e: _fn("substring", _f(e, "file_name"), 1, 3) == "xp", [88, 91]),
    ("substring3", "file", lambda e: _ieq(_fn("substring", _f(e, "file_name"), 1, 3), "xp"), [88, 91, 92]),
    (
        "substring4",
        "file",
        lambda e: _ieq(_fn("substring", _f(e, "file_name"), -4), ".exe"),
        [55, 59, 61, 65, 67, 70, 72, 75, 76, 81, 83, 86, 88, 91],
    ),
    (
        "substring5",
        "file",
        lambda e: _ieq(_fn("substring", _f(e, "file_name"), -4, -1), ".ex"),
        [55, 59, 61, 65, 67, 70, 72, 75, 76, 81, 83, 86, 88, 91],
    ),
    (
        "twoAdds",
        "process",
        lambda e: _fn("add", _f(e, _ID), 0) == 1 and _fn("add", 0, 1) == _f(e, _ID),
        [1],
    ),
    ("subtract", "process", lambda e: _fn("subtract", _f(e, _ID), -5) == 6, [1]),
    (
        "multiplyAndDivide",
        "process",
        lambda e: _fn("multiply", 6, _f(e, _ID)) == 30 and _fn("divide", 30, 4.0) == 7.5,
        [5],
    ),
    ("stringNumberConversion1", "process", lambda e: _f(e, _ID) == _fn("number", "5"), [5]),
    ("stringNumberConversion2", "process", lambda e: _f(e, _ID) == _fn("number", "0x32", 16), [50]),
    ("stringNumberConversion3", "process", lambda e: _f(e, _ID) == _fn("number", "32", 16), [50]),
    (
        "concat1",
        "process",
        lambda e: _ieq(
            _fn("concat", _f(e, _ID), ":", _f(e, "process_name"), _f(e, "opcode")), "5:wininit.exe3"
        ),
        [5],
    ),
    (
        "concatCaseInsensitive",
        "process",
        lambda e: _ieq(
            _fn("concat", _f(e, _ID), ":", _f(e, "process_name"), _f(e, "opcode")), "5:winINIT.exe3"
        ),
        [5],
    ),
    (
        "betweenCaseInsensitive1",
        "process",
        lambda e: _ieq(_fn("between", _f(e, "process_name"), "s", "E", ci=True), "yst"),
        [1, 2],
    ),
    (
        "betweenCaseInsensitive2",
        "process",
        lambda e: _ieq(_fn("between", _f(e, "process_name"), "s", "E", False, ci=True), "yst"),
        [1, 2],
    ),
    (
        "betweenCaseSensitive",
        "process",
        lambda e: _ieq(_fn("between", _f(e, "process_name"), "s", "e", False), "t"),
        [1, 2, 42],
    ),
    (
        "between1",
        "process",
        lambda e: _ieq(_fn("between", _f(e, "process_name"), "S", "e", True), "ystem Idle Proc"),
        [1],
    ),
    (
        "betweenCaseInsensitive3",
        "process",
        lambda e: _ieq(_fn("between", _f(e, "process_name"), "s", "e", True, ci=True), "ystem Idle Proc"),
        [1],
    ),
    (
        "between2",
        "file",
        lambda e: _ieq(_fn("between", _f(e, "file_path"), "dev", ".json", False), "\\TestLogs\\something"),
        [95],
    ),
    (
        "cidrMatch1",
        "network",
        lambda e: _truthy(_fn("cidrMatch", _f(e, "source_address"), *_NET)),
        [75304, 75305],
    ),
    (
        "cidrMatch3",
        "network",
        lambda e: _truthy(_fn("cidrMatch", _f(e, "source_address"), "192.168.0.0/16", *_NET)),
        [75304, 75305],
    ),
    (
        "lengthCaseSensitive",
        "process",
        lambda e: _pos(_fn("length", _fn("between", _f(e, "process_name"), "g", "e"))),
        [7, 14, 29, 44],
    ),
    (
        "length1",
        "process",
        lambda e: _pos(_fn("length", _fn("between", _f(e, "process_name"), "g", "z"))),
        [],
    ),
]


@pytest.fixture(scope="module")
def endgame() -> list[Event]:
    events: list[Event] = json.loads(DATASET.read_text())
    return events


@pytest.mark.parametrize(
    ("query", "category", "pred", "expected"), CORPUS_CASES, ids=[c[0] for c in CORPUS_CASES]
)
def test_corpus_query(
    endgame: list[Event], query: str, category: str | None, pred: Pred, expected: list[int]
) -> None:
    ids = sorted(
        _id_of(e)
        for e in endgame
        if (category is None or e.get("event_type") == category) and _truthy(pred(e) or False)
    )
    assert ids == expected, query


def test_corpus_queries_exist() -> None:
    """Every corpus query name quoted above is a real, active query in the corpus."""
    names: set[str] = set()
    for toml in CORPUS.glob("*.toml"):
        names.update(re.findall(r'^name\s*=\s*"([^"]+)"', toml.read_text(), flags=re.MULTILINE))
    assert {c[0] for c in CORPUS_CASES} <= names
