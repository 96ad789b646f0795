"""_native.py's ctypes declarations, checked against include/last_call.h.

The header is parsed with pycparser (comments and preprocessor lines taken
out first, the fixed-width integer types declared as typedefs so that their
names survive). Every function the header declares must be in _native's
table with the same arguments and result (or be listed below as unused,
with the reason); every entry of the table must be in the header. The
callback types, the struct gs_config mirror and the enums mirrored in
Python are checked the same way.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path
from typing import Any

import pytest
from last_call import Phase, SecondSignal, StreamKind, _native
from last_call._arguments import _METRICS_FORMATS
from pycparser import c_ast, c_parser

HEADER = Path(__file__).resolve().parents[3] / "include" / "last_call.h"

#: Functions of the C ABI that the Python package does not call, and why.
UNUSED = {
    # The package registers every hook on its own (flags 0, which is what
    # gs_register_shutdown_hook means); running a hook beside the previous
    # one (GS_HOOK_WITH_PREVIOUS) is not offered in Python.
    "gs_register_shutdown_hook_ex": "hooks with flags are not offered in Python",
}

#: The C types, by name, and the ctypes type that passes each.
SCALARS: dict[str, Any] = {
    "void": None,
    "bool": ctypes.c_bool,
    "double": ctypes.c_double,
    "size_t": ctypes.c_size_t,
    "uint8_t": ctypes.c_uint8,
    "int32_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "int64_t": ctypes.c_int64,
    "uint64_t": ctypes.c_uint64,
    # A fixed-width status: `typedef uint32_t gs_status` in C.
    "gs_status": ctypes.c_uint32,
}
#: Pointers that ctypes passes as a type of their own, not as POINTER(...).
POINTERS: dict[str, Any] = {
    "void *": ctypes.c_void_p,
    "char *": ctypes.c_char_p,  # an output buffer (create_string_buffer)
    "const char *": ctypes.c_char_p,
    # A byte buffer with its length beside it: c_char_p takes a bytes object
    # as it is, where POINTER(c_uint8) would need a copy into an array.
    "const uint8_t *": ctypes.c_char_p,
}
#: The header's callback types -> _native's CFUNCTYPEs.
CALLBACKS = {
    "gs_phase_callback": _native.PHASE_CALLBACK,
    "gs_readiness_check": _native.READINESS_CALLBACK,
    "gs_shutdown_hook": _native.HOOK_CALLBACK,
}
STRUCTS = {"gs_config": _native.Config}

# What pycparser cannot read (it takes preprocessed C), and what the
# preprocessor's headers would have declared.
PRELUDE = "".join(
    f"typedef int {name};\n" for name in ("bool", "size_t", "uint8_t", "int32_t", "uint32_t", "int64_t", "uint64_t")
)


def parse_header() -> c_ast.FileAST:
    text = HEADER.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    # C++'s `extern "C" {` and its closing brace, then every other directive.
    text = re.sub(r"^#ifdef __cplusplus$.*?^#endif[^\n]*$", "", text, flags=re.S | re.M)
    # gs_status's fixed underlying type (C++ and C23 only), and its C23
    # typedef: the C11 branch is the one read here (`typedef uint32_t`).
    text = re.sub(r"^#if defined\(__cplusplus\).*?^#endif[^\n]*$", "", text, flags=re.S | re.M)
    text = re.sub(r"^#if __STDC_VERSION__ >= 202311L$.*?^#else$", "", text, flags=re.S | re.M)
    text = re.sub(r"^\s*#[^\n]*", "", text, flags=re.M)
    return c_parser.CParser().parse(PRELUDE + text, filename=str(HEADER))


AST = parse_header()


def c_type(node: c_ast.Node) -> str:
    """A declaration's type as text: ``const char *``, ``enum gs_phase``."""
    if isinstance(node, c_ast.PtrDecl):
        return c_type(node.type) + " *"
    if isinstance(node, c_ast.TypeDecl):
        const = "const " if "const" in node.quals else ""
        inner = node.type
        if isinstance(inner, c_ast.IdentifierType):
            return const + " ".join(inner.names)
        if isinstance(inner, c_ast.Enum):
            return const + "enum " + inner.name
        if isinstance(inner, c_ast.Struct):
            return const + "struct " + inner.name
    raise AssertionError(f"a type the check does not know: {node}")


def expected_ctype(text: str) -> Any:
    """The ctypes type that must be declared for the C type ``text``."""
    if text in POINTERS:
        return POINTERS[text]
    if text.endswith(" *"):
        return ctypes.POINTER(expected_ctype(text[: -len(" *")].removeprefix("const ")))
    if text.startswith("enum gs_"):
        return ctypes.c_int  # a C enum is an int
    if text.startswith("struct ") and text[len("struct ") :] in STRUCTS:
        return STRUCTS[text[len("struct ") :]]
    if text in CALLBACKS:
        return CALLBACKS[text]
    assert text in SCALARS, f"a C type the check does not know: {text}"
    return SCALARS[text]


def arguments(function: c_ast.FuncDecl) -> list[c_ast.Node]:
    params = [] if function.args is None else function.args.params
    # `(void)` is no argument.
    if len(params) == 1 and isinstance(params[0], c_ast.Typename) and c_type(params[0].type) == "void":
        return []
    return list(params)


def signature(function: c_ast.FuncDecl) -> tuple[list[Any], Any]:
    return [expected_ctype(c_type(p.type)) for p in arguments(function)], expected_ctype(c_type(function.type))


def header_functions() -> dict[str, c_ast.FuncDecl]:
    return {
        node.name: node.type
        for node in AST.ext
        if isinstance(node, c_ast.Decl) and isinstance(node.type, c_ast.FuncDecl)
    }


def header_typedef(name: str) -> c_ast.Node:
    for node in AST.ext:
        if isinstance(node, c_ast.Typedef) and node.name == name:
            return node.type
    raise AssertionError(f"{name} is not declared in the header")


def name_of(ctype: Any) -> str:
    return "void" if ctype is None else ctype.__name__


def test_the_header_is_parsed():
    # The check means something only if it saw the whole C ABI.
    functions = header_functions()
    assert len(functions) >= 40
    assert {"gs_version", "gs_hub_publish", "gs_wait_for_phase"} <= set(functions)


def test_every_function_of_the_header_is_declared_or_listed_as_unused():
    in_header = set(header_functions())
    declared = set(_native._SIGNATURES)
    assert sorted(in_header - declared - set(UNUSED)) == [], "declare these in _native._SIGNATURES"
    assert sorted(declared - in_header) == [], "these are not in the header"
    assert sorted(set(UNUSED) & declared) == [], "listed as unused, but declared"
    assert sorted(set(UNUSED) - in_header) == [], "listed as unused, but not in the header"


def differences(signatures: dict[str, tuple[list[Any], Any]]) -> list[str]:
    """Each function whose declaration in ``signatures`` is not the header's."""
    found = []
    for name, function in header_functions().items():
        if name in UNUSED or name not in signatures:
            continue
        expected_args, expected_result = signature(function)
        argtypes, restype = signatures[name]
        if list(argtypes) != expected_args or restype is not expected_result:
            found.append(
                f"{name}: header ({', '.join(map(name_of, expected_args))}) -> {name_of(expected_result)}, "
                f"_native ({', '.join(map(name_of, argtypes))}) -> {name_of(restype)}"
            )
    return found


def test_every_declaration_has_the_header_s_argument_and_result_types():
    assert differences(_native._SIGNATURES) == []


@pytest.mark.parametrize(
    ("name", "drifted"),
    [
        ("gs_wait_for_phase", ([ctypes.c_int, ctypes.c_double], ctypes.c_int)),  # an argument's type
        ("gs_stream_end_in", ([ctypes.c_uint32], ctypes.c_int)),  # an argument missing
        ("gs_active_streams", ([], ctypes.c_uint32)),  # the result's type
        ("gs_heartbeat", ([], ctypes.c_int)),  # void
        ("gs_hub_publish", ([ctypes.c_char_p] * 8 + [ctypes.POINTER(ctypes.c_uint64)], ctypes.c_int)),  # size_t *
    ],
)
def test_a_drifted_declaration_is_caught(name, drifted):
    found = differences({**_native._SIGNATURES, name: drifted})
    assert [line.split(":")[0] for line in found] == [name]


@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_the_callback_types_match(name):
    pointer = header_typedef(name)
    assert isinstance(pointer, c_ast.PtrDecl) and isinstance(pointer.type, c_ast.FuncDecl)
    expected_args, expected_result = signature(pointer.type)
    declared = CALLBACKS[name]
    assert list(declared._argtypes_) == expected_args
    assert declared._restype_ is expected_result


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_the_struct_mirrors_have_the_header_s_fields_in_order(name):
    struct = header_typedef(name).type
    assert isinstance(struct, c_ast.Struct) and struct.decls
    in_header = [(field.name, expected_ctype(c_type(field.type))) for field in struct.decls]
    assert STRUCTS[name]._fields_ == in_header


def header_enum(name: str) -> dict[str, int]:
    enum = header_typedef(name).type
    assert isinstance(enum, c_ast.Enum)
    return {item.name: int(item.value.value) for item in enum.values.enumerators}


def header_defines(prefix: str) -> dict[str, int]:
    return {name: int(value) for name, value in re.findall(rf"^#define ({prefix}\w+) (\d+)$", HEADER.read_text(), re.M)}


def test_the_enums_mirrored_in_python_match():
    assert header_enum("gs_phase") == {f"GS_PHASE_{member.name}": int(member) for member in Phase}
    assert header_enum("gs_second_signal") == {
        f"GS_SECOND_SIGNAL_{member.name}": int(member) for member in SecondSignal
    }
    assert header_enum("gs_metrics_format") == {
        f"GS_METRICS_{name.upper()}": code for name, code in _METRICS_FORMATS.items()
    }
    assert header_defines("GS_STREAM_") == {f"GS_STREAM_{kind.name}": kind.native for kind in StreamKind}
