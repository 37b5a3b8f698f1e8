"""Method service set: Call (OPC UA Part 4 v1.04 §5.11.2).

The methods come from the profile (`opcua.methods`: name, node id, typed inputs and outputs,
optionally an example call with its outputs); each is called on the profile's object.  The
codes checked are those of §5.11.2.3: Table 67 (operation level: Bad_ArgumentsMissing,
Bad_TooManyArguments, Bad_InvalidArgument, Bad_MethodInvalid "the method id does not refer to
a Method for the specified Object", ...) and Table 68 (inputArgumentResults: Bad_TypeMismatch
for an argument of the wrong data type).

Calls go through the profile's test user when the device claims user name tokens (a device may
refuse anonymous method calls), otherwise through an anonymous session.  Every argument names
its VariantType: a Python int would otherwise go out as Int64.
"""

from __future__ import annotations

import math
import struct

from harness.conformance import case, fail, not_applicable
from harness.opcua import ua
from harness.profile_opcua import MethodDef

from .support import P4, describe, status_name

V = ua.VariantType
Code = ua.StatusCodes
CLAUSE = f"{P4} §5.11.2"
SERVER_OBJECT = ua.NodeId(ua.ObjectIds.Server)  # i=2253: has no component method of the device
DEFAULTS = {"Boolean": True, "String": "harness", "Float": 1.5, "Double": 1.5}


def _methods(dut, why: str = "method", predicate=lambda m: True) -> list[MethodDef]:
    methods = [m for m in dut.ua.methods if predicate(m)]
    if not methods:
        not_applicable(f"the profile declares no {why} (opcua.methods)")
    return methods


def _session(dut):
    if "username" in dut.ua.user_tokens and dut.ua.users:
        return dut.session(user=dut.ua.users[0].name)
    return dut.session()


def _argument(data_type: str, value) -> ua.Variant:
    if data_type in ("Float", "Double"):
        value = float(value)
    elif data_type not in ("Boolean", "String"):
        value = int(value)
    return ua.Variant(value, getattr(V, data_type))


def _inputs(method: MethodDef) -> list[ua.Variant]:
    """The example inputs when the profile gives them, else a plain value of each type."""
    values = method.example_inputs or [DEFAULTS.get(a.data_type, 1) for a in method.inputs]
    return [_argument(a.data_type, v) for a, v in zip(method.inputs, values)]


def _wrong(data_type: str) -> ua.Variant:
    """A value of a built-in type that is not `data_type` (nor a subtype of it)."""
    return ua.Variant(True, V.Boolean) if data_type == "String" else ua.Variant("not-a-number", V.String)


async def _ids(dut, s, method: MethodDef) -> tuple[ua.NodeId, ua.NodeId]:
    return await dut.node(s, dut.ua.object_node_id), await dut.node(s, method.node_id)


async def _call(s, object_id: ua.NodeId, method_id: ua.NodeId, arguments: list[ua.Variant]):
    """One CallMethodRequest; the single CallMethodResult, or FAIL when the service fails."""
    req = ua.CallRequest()
    item = ua.CallMethodRequest()
    item.ObjectId, item.MethodId, item.InputArguments = object_id, method_id, arguments
    req.Parameters.MethodsToCall = [item]
    reply = await s.request(req)
    if not isinstance(reply, ua.CallResponse) or not reply.ResponseHeader.ServiceResult.is_good():
        fail("the Call service did not succeed", expected="a CallResponse with ServiceResult Good (operation errors are per item)",
             observed=describe(reply))
    if len(reply.Results) != 1:
        fail(f"{len(reply.Results)} results for one method call", expected="1 CallMethodResult", observed=describe(reply))
    return reply.Results[0]


def _same_output(data_type: str, expected, observed) -> bool:
    if data_type == "Float":
        return observed == struct.unpack("<f", struct.pack("<f", float(expected)))[0]
    if data_type == "Double":
        return isinstance(observed, (int, float)) and math.isclose(float(expected), observed, rel_tol=1e-12, abs_tol=1e-12)
    return observed == expected


def _show_args(arguments: list[ua.Variant]) -> str:
    return ", ".join(f"{v.VariantType.name} {v.Value!r}" for v in arguments) or "none"


@case("UA-CALL-METHOD", "Each method called with correct arguments succeeds and returns its declared outputs",
      requirements=["UA-P4-5.11.2-CALL"], level="MUST", clause=CLAUSE)
def test_call_method(dut):
    methods = _methods(dut)

    async def check():
        problems: list[str] = []
        async with _session(dut) as s:
            for method in methods:
                object_id, method_id = await _ids(dut, s, method)
                arguments = _inputs(method)
                result = await _call(s, object_id, method_id, arguments)
                if not result.StatusCode.is_good():
                    problems.append(f"{method.name}({_show_args(arguments)}): {status_name(result.StatusCode)}")
                    continue
                outputs = list(result.OutputArguments or [])
                if len(outputs) != len(method.outputs):
                    problems.append(f"{method.name}: {len(outputs)} output arguments, {len(method.outputs)} declared")
                    continue
                for i, (spec, out) in enumerate(zip(method.outputs, outputs)):
                    if out.VariantType != getattr(V, spec.data_type) or isinstance(out.Value, list):
                        problems.append(f"{method.name} output {i} ({spec.name}) is {out.VariantType.name} {out.Value!r}, "
                                        f"declared {spec.data_type}")
                    elif method.example_outputs and not _same_output(spec.data_type, method.example_outputs[i], out.Value):
                        problems.append(f"{method.name}({_show_args(arguments)}) output {spec.name} = {out.Value!r}, "
                                        f"the profile's example says {method.example_outputs[i]!r}")
        if problems:
            fail(f"method calls do not return what the methods declare: {problems[0]}",
                 expected="Good, and outputs of the declared types (the profile's example outputs where given)",
                 observed="; ".join(problems))

    dut.run(check())


@case("UA-CALL-ARGUMENTS-MISSING", "A call with too few input arguments gives Bad_ArgumentsMissing",
      requirements=["UA-P4-5.11.2-ARGUMENTS"], level="MUST", clause=f"{P4} §5.11.2.3")
def test_call_arguments_missing(dut):
    method = _methods(dut, "method with input arguments", lambda m: m.inputs)[0]

    async def check():
        async with _session(dut) as s:
            object_id, method_id = await _ids(dut, s, method)
            arguments = _inputs(method)[:-1]
            result = await _call(s, object_id, method_id, arguments)
        if result.StatusCode.value != Code.BadArgumentsMissing:
            fail(f"{method.name} called with {len(arguments)} of its {len(method.inputs)} inputs gives {status_name(result.StatusCode)}",
                 expected="Bad_ArgumentsMissing", observed=status_name(result.StatusCode))

    dut.run(check())


@case("UA-CALL-TOO-MANY-ARGUMENTS", "A call with an extra input argument gives Bad_TooManyArguments",
      requirements=["UA-P4-5.11.2-ARGUMENTS"], level="MUST", clause=f"{P4} §5.11.2.3")
def test_call_too_many_arguments(dut):
    method = _methods(dut)[0]

    async def check():
        async with _session(dut) as s:
            object_id, method_id = await _ids(dut, s, method)
            extra_type = method.inputs[-1].data_type if method.inputs else "Double"
            arguments = _inputs(method) + [_argument(extra_type, DEFAULTS.get(extra_type, 1))]
            result = await _call(s, object_id, method_id, arguments)
        if result.StatusCode.value != Code.BadTooManyArguments:
            fail(f"{method.name} called with {len(arguments)} inputs ({len(method.inputs)} declared) gives {status_name(result.StatusCode)}",
                 expected="Bad_TooManyArguments", observed=status_name(result.StatusCode))

    dut.run(check())


@case("UA-CALL-WRONG-TYPE", "A wrongly typed input gives Bad_InvalidArgument with Bad_TypeMismatch for that argument",
      requirements=["UA-P4-5.11.2-ARGUMENTS"], level="MUST", clause=f"{P4} §5.11.2.3")
def test_call_wrong_type(dut):
    method = _methods(dut, "method with input arguments", lambda m: m.inputs)[0]
    index = len(method.inputs) - 1

    async def check():
        async with _session(dut) as s:
            object_id, method_id = await _ids(dut, s, method)
            arguments = _inputs(method)
            arguments[index] = _wrong(method.inputs[index].data_type)
            result = await _call(s, object_id, method_id, arguments)
        code = result.StatusCode
        what = f"{method.name}({_show_args(arguments)}), input {index} declared {method.inputs[index].data_type}"
        if code.value != Code.BadInvalidArgument:
            fail(f"{what}: {status_name(code)}", expected="Bad_InvalidArgument (Table 67)", observed=status_name(code))
        # Table 65/68: a StatusCode for each input argument, Bad_TypeMismatch for the wrong one.
        results = [status_name(r) for r in (result.InputArgumentResults or [])]
        wanted = ["Good"] * len(arguments)
        wanted[index] = "BadTypeMismatch"
        if results != wanted:
            fail(f"{what}: inputArgumentResults {results}", expected=f"inputArgumentResults {wanted}", observed=str(results))

    dut.run(check())


@case("UA-CALL-WRONG-OBJECT", "A method called on an object it does not belong to gives Bad_MethodInvalid",
      requirements=["UA-P4-5.11.2-WRONG-OBJECT"], level="MUST", clause=f"{P4} §5.11.2.3")
def test_call_wrong_object(dut):
    method = _methods(dut)[0]

    async def check():
        async with _session(dut) as s:
            _, method_id = await _ids(dut, s, method)
            result = await _call(s, SERVER_OBJECT, method_id, _inputs(method))
        if result.StatusCode.value != Code.BadMethodInvalid:
            ran = f", outputs {[o.Value for o in result.OutputArguments]}" if result.StatusCode.is_good() else ""
            fail(f"{method.name} called on the Server object (i=2253) gives {status_name(result.StatusCode)}{ran}",
                 expected="Bad_MethodInvalid (the method is not a component of that object)",
                 observed=status_name(result.StatusCode))

    dut.run(check())


@case("UA-CALL-UNKNOWN-METHOD", "A method id that names no method of the object gives Bad_MethodInvalid",
      requirements=["UA-P4-5.11.2-WRONG-OBJECT"], level="MUST", clause=f"{P4} §5.11.2.3")
def test_call_unknown_method(dut):
    _methods(dut)  # the device claims methods on its object

    async def check():
        async with _session(dut) as s:
            object_id = await dut.node(s, dut.ua.object_node_id)
            method_id = await dut.node(s, f"s={dut.ua.object_name}.harness-no-such-method")
            result = await _call(s, object_id, method_id, [])
        if result.StatusCode.value != Code.BadMethodInvalid:
            fail(f"calling the unknown method {method_id.to_string()} on {object_id.to_string()} gives {status_name(result.StatusCode)}",
                 expected="Bad_MethodInvalid (Table 67: the method id does not refer to a Method for the specified Object)",
                 observed=status_name(result.StatusCode))

    dut.run(check())
