"""Swarm request validation: every message, with Docker's status and exact text.

The expected texts were captured from a real Docker swarm manager (dockerd 20.10.24) and
checked against moby 28.5 / swarmkit sources. Where 28.x differs from 20.10 the test follows
28.x: decoder errors carry the `invalid JSON: ` prefix, the healthcheck struct is
`HealthcheckConfig`, and distribution/reference v0.6 accepts `Foo/bar` and `[::1]:5000/x`.
"""

import copy

import pytest

from shoal.api.errors import BadRequest, ShoalError
from shoal.api.validation import (
    DUMMY_CONTEXT,
    DaemonError,
    InvalidArgument,
    InvalidParameter,
    RPCUnknown,
    Unimplemented,
    check_json_types,
    check_port_conflicts,
    check_service_update,
    go_format_g,
    go_quote,
    is_valid_image_reference,
    swarmkit_validate_service_spec,
    validate_annotations,
    validate_cluster_spec,
    validate_config_or_secret_name,
    validate_name,
    validate_node_spec,
    validate_service_spec,
)

RPC = "rpc error: code = InvalidArgument desc = "
JSON = "invalid JSON: json: cannot unmarshal "


def svc(**top):
    spec = {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}}}
    spec.update(top)
    return spec


def task(**fields):
    t = {"ContainerSpec": {"Image": "busybox"}}
    t.update(fields)
    return svc(TaskTemplate=t)


def ctr(**fields):
    c = {"Image": "busybox"}
    c.update(fields)
    return task(ContainerSpec=c)


def fail(fn, *args, **kw) -> ShoalError:
    with pytest.raises(ShoalError) as e:
        fn(*args, **kw)
    return e.value


def service_error(spec, **kw) -> tuple[type, int, str]:
    e = fail(validate_service_spec, spec, **kw)
    return type(e), e.status, str(e)


# ================================================================ error classes


def test_invalid_argument_text_and_bare_message():
    e = InvalidArgument("EndpointSpec: duplicate published ports provided")
    assert str(e) == RPC + "EndpointSpec: duplicate published ports provided"
    assert e.message == "EndpointSpec: duplicate published ports provided"
    assert e.status == 400 and isinstance(e, BadRequest)


def test_other_error_classes():
    assert (RPCUnknown("x").status, str(RPCUnknown("x"))) == (
        500,
        "rpc error: code = Unknown desc = x",
    )
    assert (Unimplemented("x").status, str(Unimplemented("x"))) == (
        501,
        "rpc error: code = Unimplemented desc = x",
    )
    assert (InvalidParameter("x").status, str(InvalidParameter("x"))) == (400, "x")
    assert isinstance(InvalidParameter("x"), InvalidArgument)  # `except InvalidArgument` sees 400s
    assert not isinstance(RPCUnknown("x"), InvalidArgument)
    assert (DaemonError("x").status, str(DaemonError("x"))) == (500, "x")


# ================================================================ Go formatting


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (1e-09, "1e-09"),
        (0.0005, "0.0005"),
        (-5e-05, "-5e-05"),
        (0.001, "0.001"),
        (0.0001, "0.0001"),
        (100000.0, "100000"),
        (1234567.0, "1.234567e+06"),
        (-2.0, "-2"),
        (0.0, "0"),
    ],
)
def test_go_format_g(x, text):
    assert go_format_g(x) == text


def test_go_quote():
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("x\n\t\x01\x7f") == '"x\\n\\t\\x01\\x7f"'
    assert go_quote("é\u00a0") == '"é\\u00a0"'


# ================================================================ stage 1: JSON types

JSON_CASES = [
    (
        svc(Mode={"Replicated": {"Replicas": -1}}),
        "number -1 into Go struct field ReplicatedService.Mode.Replicated.Replicas of type uint64",
    ),
    (
        svc(Mode={"Replicated": {"Replicas": 18446744073709551616}}),
        "number 18446744073709551616 into Go struct field "
        "ReplicatedService.Mode.Replicated.Replicas of type uint64",
    ),
    (
        svc(Mode={"ReplicatedJob": {"MaxConcurrent": -2}}),
        "number -2 into Go struct field ReplicatedJob.Mode.ReplicatedJob.MaxConcurrent"
        " of type uint64",
    ),
    (
        svc(Mode={"Replicated": {"Replicas": "3"}}),
        "string into Go struct field ReplicatedService.Mode.Replicated.Replicas of type uint64",
    ),
    (svc(Name=5), "number into Go struct field ServiceSpec.Name of type string"),
    (svc(Name={}), "object into Go struct field ServiceSpec.Name of type string"),
    (svc(Labels={"a": 1}), "number into Go struct field ServiceSpec.Labels of type string"),
    (
        svc(Labels=["a"]),
        "array into Go struct field ServiceSpec.Labels of type map[string]string",
    ),
    (
        svc(Name=5, Labels={"a": 1}),  # the first error in document order
        "number into Go struct field ServiceSpec.Name of type string",
    ),
    (
        svc(TaskTemplate="x"),
        "string into Go struct field ServiceSpec.TaskTemplate of type swarm.TaskSpec",
    ),
    (
        svc(TaskTemplate=[1]),
        "array into Go struct field ServiceSpec.TaskTemplate of type swarm.TaskSpec",
    ),
    (
        svc(TaskTemplate={"ContainerSpec": [1]}),
        "array into Go struct field TaskSpec.TaskTemplate.ContainerSpec"
        " of type swarm.ContainerSpec",
    ),
    (
        ctr(Env=[1]),
        "number into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.Env of type string",
    ),
    (
        ctr(Env="A=1"),
        "string into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.Env of type []string",
    ),
    (
        ctr(TTY="yes"),
        "string into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.TTY of type bool",
    ),
    (
        ctr(TTY=1),
        "number into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.TTY of type bool",
    ),
    (
        ctr(Labels={"a": True}),
        "bool into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.Labels of type string",
    ),
    (
        ctr(Secrets=["x"]),
        "string into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.Secrets"
        " of type swarm.SecretReference",
    ),
    (
        ctr(Secrets=[{"File": {"Mode": -1}}]),
        "number -1 into Go struct field SecretReferenceFileTarget.TaskTemplate.ContainerSpec"
        ".Secrets.File.Mode of type fs.FileMode",
    ),
    (
        ctr(Healthcheck={"Retries": 1.5}),
        "number 1.5 into Go struct field HealthcheckConfig.TaskTemplate.ContainerSpec"
        ".Healthcheck.Retries of type int",
    ),
    (
        ctr(Ulimits=[{"Hard": "x"}]),
        "string into Go struct field Ulimit.TaskTemplate.ContainerSpec.Ulimits.Hard of type int64",
    ),
    (
        ctr(Mounts=[{"TmpfsOptions": {"SizeBytes": "x"}}]),
        "string into Go struct field TmpfsOptions.TaskTemplate.ContainerSpec.Mounts"
        ".TmpfsOptions.SizeBytes of type int64",
    ),
    (
        task(RestartPolicy={"Delay": 1.5}),
        "number 1.5 into Go struct field RestartPolicy.TaskTemplate.RestartPolicy.Delay"
        " of type time.Duration",
    ),
    (
        task(Resources={"Limits": {"NanoCPUs": 1.0}}),
        "number 1.0 into Go struct field Limit.TaskTemplate.Resources.Limits.NanoCPUs"
        " of type int64",
    ),
    (
        svc(UpdateConfig={"MaxFailureRatio": "x"}),
        "string into Go struct field UpdateConfig.UpdateConfig.MaxFailureRatio of type float32",
    ),
    (
        svc(UpdateConfig={"MaxFailureRatio": 1e39}),
        "number 1e+39 into Go struct field UpdateConfig.UpdateConfig.MaxFailureRatio"
        " of type float32",
    ),
    (
        svc(EndpointSpec={"Ports": [{"TargetPort": -1}]}),
        "number -1 into Go struct field PortConfig.EndpointSpec.Ports.TargetPort of type uint32",
    ),
    (
        svc(EndpointSpec={"Ports": [{"TargetPort": 70000, "PublishedPort": 4294967296}]}),
        "number 4294967296 into Go struct field PortConfig.EndpointSpec.Ports.PublishedPort"
        " of type uint32",
    ),
    ([1], "array into Go value of type swarm.ServiceSpec"),
]


@pytest.mark.parametrize(("spec", "message"), JSON_CASES)
def test_json_type_errors(spec, message):
    assert service_error(spec) == (InvalidParameter, 400, JSON + message)


def test_json_nulls_and_unknown_fields_are_accepted():
    validate_service_spec(svc(Labels=None, UpdateConfig=None, EndpointSpec=None, Bogus=[1]))
    validate_service_spec(ctr(Mounts=None, Env=None, Init=None, StopGracePeriod=None))


def test_json_other_kinds():
    with pytest.raises(InvalidParameter, match="NodeSpec.Role of type swarm.NodeRole"):
        check_json_types("NodeSpec", {"Role": 5})
    with pytest.raises(InvalidParameter, match="JoinRequest.RemoteAddrs of type string"):
        check_json_types("JoinRequest", {"RemoteAddrs": [1]})
    check_json_types("Spec", None)


# ================================================================ stage 2: the daemon

DAEMON_CASES = [
    (svc(TaskTemplate={}), "mismatched Runtime and *Spec fields"),
    (svc(TaskTemplate={"ContainerSpec": None}), "mismatched Runtime and *Spec fields"),
    (task(Runtime="plugin"), "mismatched Runtime and *Spec fields"),
    (task(Runtime="foo"), "unsupported runtime"),
    (task(Runtime="attachment"), "unsupported runtime"),
    (
        svc(TaskTemplate={"Runtime": "plugin", "PluginSpec": {}}, Mode={"Replicated": {}}),
        "plugins must not use replicated mode",
    ),
    (task(RestartPolicy={"Condition": "bogus"}), 'invalid RestartCondition: "bogus"'),
    (task(RestartPolicy={"Condition": "On-Failure"}), 'invalid RestartCondition: "On-Failure"'),
    (svc(UpdateConfig={"FailureAction": "x"}), "unrecognized update failure action x"),
    (svc(UpdateConfig={"Order": "x"}), "unrecognized update order x"),
    (svc(RollbackConfig={"FailureAction": "y"}), "unrecognized update failure action y"),
    (svc(RollbackConfig={"Order": "Start-First"}), "unrecognized update order Start-First"),
    (svc(EndpointSpec={"Mode": "x"}), 'invalid resolution mode: "x"'),
    (svc(EndpointSpec={"Mode": "VIP"}), 'invalid resolution mode: "VIP"'),
    (svc(Mode={"Replicated": {}, "Global": {}}), "must specify only one service mode"),
    (svc(Mode={"ReplicatedJob": {}, "GlobalJob": {}}), "must specify only one service mode"),
    (ctr(Mounts=[{"Type": "foo", "Target": "/a"}]), 'invalid MountType: "foo"'),
    (ctr(Mounts=[{"Type": "image", "Target": "/a"}]), 'invalid MountType: "image"'),
    (
        ctr(Mounts=[{"Type": "bind", "Target": "/a", "BindOptions": {"Propagation": "x"}}]),
        'invalid MountPropagation: "x"',
    ),
    (
        ctr(Privileges={"CredentialSpec": {}}),
        'invalid CredentialSpec: must either provide "file", "registry", or "config"'
        " for credential spec",
    ),
    (
        ctr(Privileges={"CredentialSpec": {"Config": "a", "File": "b"}}),
        'invalid CredentialSpec: cannot specify both "config" and "file" credential specs',
    ),
    (
        ctr(Privileges={"CredentialSpec": {"Config": "a", "File": "b", "Registry": "c"}}),
        'invalid CredentialSpec: cannot specify both "config", "file", and "registry"'
        " credential specs",
    ),
    (
        ctr(Configs=[{"ConfigID": "i", "ConfigName": "s"}]),
        "invalid Config: either File or Runtime should be set",
    ),
    (
        ctr(Configs=[{"ConfigID": "i", "ConfigName": "s", "File": {"Name": "x"}, "Runtime": {}}]),
        "invalid Config: cannot specify both File and Runtime",
    ),
]


@pytest.mark.parametrize(("spec", "message"), DAEMON_CASES)
def test_daemon_conversion_errors(spec, message):
    assert service_error(spec) == (InvalidParameter, 400, message)


def test_null_body_is_the_zero_spec():
    assert service_error(None) == (InvalidParameter, 400, "mismatched Runtime and *Spec fields")


def test_plugin_services_are_refused_like_a_non_experimental_daemon():
    spec = svc(TaskTemplate={"Runtime": "plugin", "PluginSpec": {"Name": "p"}})
    assert service_error(spec) == (
        DaemonError,
        500,
        'runtime type "plugin" only supported in experimental',
    )


def test_memory_swap_needs_a_limit_from_api_1_52_only():
    spec = task(Resources={"SwapBytes": 1024})
    validate_service_spec(spec, api_version="1.47")
    validate_service_spec(spec)
    assert service_error(spec, api_version="1.52") == (
        InvalidParameter,
        400,
        "memory swap provided, but no memory-limit was set",
    )
    ok = task(Resources={"SwapBytes": 1024, "Limits": {"MemoryBytes": 8 << 20}})
    validate_service_spec(ok, api_version="1.52")


def test_daemon_accepts_case_insensitive_enums():
    validate_service_spec(ctr(Mounts=[{"Type": "BIND", "Source": "/", "Target": "/x"}]))
    validate_service_spec(task(RestartPolicy={"Condition": "on-failure"}))


# ================================================================ stage 3: swarmkit

SWARMKIT_CASES = [
    (svc(Name="a b"), "name must be valid as a DNS name component"),
    (svc(Name="-ab"), "name must be valid as a DNS name component"),
    (svc(Name="a" * 64), "name must be 63 characters or fewer"),
    (ctr(Image=""), "ContainerSpec: image reference must be provided"),
    (ctr(Image="UPPER"), 'ContainerSpec: "UPPER" is not a valid repository/tag'),
    (ctr(Image="a" * 64), f'ContainerSpec: "{"a" * 64}" is not a valid repository/tag'),
    (
        ctr(Image="busybox@sha256:abc"),
        'ContainerSpec: "busybox@sha256:abc" is not a valid repository/tag',
    ),
    (
        task(Resources={"Limits": {"NanoCPUs": 1}}),
        "invalid cpu value 1e-09: Must be at least 0.001",
    ),
    (
        task(Resources={"Reservations": {"NanoCPUs": 500000}}),
        "invalid cpu value 0.0005: Must be at least 0.001",
    ),
    (
        task(Resources={"Reservations": {"NanoCPUs": -50000}}),
        "invalid cpu value -5e-05: Must be at least 0.001",
    ),
    (
        task(Resources={"Limits": {"MemoryBytes": 100}}),
        "invalid memory value 100: Must be at least 4MiB",
    ),
    (
        task(Resources={"Reservations": {"MemoryBytes": -1}}),
        "invalid memory value -1: Must be at least 4MiB",
    ),
    (
        task(Resources={"Limits": {"NanoCPUs": 5, "MemoryBytes": 5}}),
        "invalid cpu value 5e-09: Must be at least 0.001",
    ),
    (task(RestartPolicy={"Delay": -1}), "TaskSpec: restart-delay cannot be negative"),
    (task(RestartPolicy={"Window": -1}), "TaskSpec: restart-window cannot be negative"),
    (
        ctr(Secrets=[{"SecretName": "s", "File": {"Name": "s"}}]),
        "malformed secret reference",
    ),
    (
        ctr(Secrets=[{"SecretID": "i", "SecretName": "s"}]),
        "malformed secret reference, no target provided",
    ),
    (
        ctr(Secrets=[{"SecretID": "i", "SecretName": "s", "File": {"Name": ""}}]),
        "malformed file secret reference, invalid target file name provided",
    ),
    (
        ctr(
            Secrets=[
                {"SecretID": "i", "SecretName": "s", "File": {"Name": "f"}},
                {"SecretID": "j", "SecretName": "t", "File": {"Name": "f"}},
            ]
        ),
        "secret references 's' and 't' have a conflicting target: 'f'",
    ),
    (
        ctr(Configs=[{"ConfigName": "s", "File": {"Name": "x"}}]),
        "malformed config reference",
    ),
    (
        ctr(Configs=[{"ConfigID": "a", "ConfigName": "c1", "File": {"Name": ""}}]),
        "malformed file config reference, invalid target file name provided",
    ),
    (
        ctr(
            Configs=[
                {"ConfigID": "a", "ConfigName": "c1", "File": {"Name": "f"}},
                {"ConfigID": "b", "ConfigName": "c2", "File": {"Name": "f"}},
            ]
        ),
        "config references 'c1' and 'c2' have a conflicting target: 'f'",
    ),
    (
        ctr(Privileges={"CredentialSpec": {"Config": "a"}}),
        "CredentialSpec references config 'a', but that config isn't in config references"
        " with RuntimeTarget",
    ),
    (
        ctr(Mounts=[{"Type": "volume", "Target": "/a"}, {"Type": "volume", "Target": "/a"}]),
        "ContainerSpec: duplicate mount point: /a",
    ),
    (
        ctr(
            Mounts=[
                {"Type": "volume", "Target": "/a/{{.Task.Slot}}"},
                {"Type": "volume", "Target": "/a/1"},
            ]
        ),
        "ContainerSpec: duplicate mount point: /a/1",
    ),
    (
        ctr(
            Mounts=[
                {"Type": "volume", "Target": "/{{ .Node.Platform.OS }}-{{.Task.ID}}"},
                {"Type": "volume", "Target": "/os-"},
            ]
        ),
        "ContainerSpec: duplicate mount point: /os-",
    ),
    (
        ctr(Healthcheck={"Interval": 1}),
        "ContainerSpec: Interval in HealthConfig cannot be less than 1ms",
    ),
    (
        ctr(Healthcheck={"Timeout": -1}),
        "ContainerSpec: Timeout in HealthConfig cannot be less than 1ms",
    ),
    (
        ctr(Healthcheck={"StartPeriod": 5}),
        "ContainerSpec: StartPeriod in HealthConfig cannot be less than 1ms",
    ),
    (
        ctr(Healthcheck={"StartInterval": 999_999}),
        "ContainerSpec: StartInterval in HealthConfig cannot be less than 1ms",
    ),
    (
        ctr(Healthcheck={"Retries": -1}),
        "ContainerSpec: Retries in HealthConfig cannot be negative",
    ),
    (svc(Mode={"ReplicatedJob": {}}, UpdateConfig={}), "Jobs may not have an update config"),
    (
        svc(Mode={"GlobalJob": {}}, UpdateConfig={"Parallelism": 1}),
        "Jobs may not have an update config",
    ),
    (svc(UpdateConfig={"Delay": -1}), "TaskSpec: update-delay cannot be negative"),
    (svc(UpdateConfig={"Monitor": -1}), "TaskSpec: update-monitor cannot be negative"),
    (
        svc(UpdateConfig={"MaxFailureRatio": 2}),
        "TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1",
    ),
    (
        svc(UpdateConfig={"MaxFailureRatio": -0.5}),
        "TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1",
    ),
    (
        svc(EndpointSpec={"Mode": "dnsrr", "Ports": [{"TargetPort": 80, "PublishedPort": 8080}]}),
        "EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
    ),
    (
        svc(EndpointSpec={"Mode": "dnsrr", "Ports": [{"TargetPort": 80}]}),
        "EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
    ),
    (
        svc(
            EndpointSpec={
                "Ports": [
                    {"TargetPort": 80, "PublishedPort": 8080},
                    {"TargetPort": 81, "PublishedPort": 8080},
                ]
            }
        ),
        "EndpointSpec: duplicate published ports provided",
    ),
    (
        svc(
            EndpointSpec={
                "Ports": [
                    {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080},
                    {"Protocol": "foo", "TargetPort": 81, "PublishedPort": 8080},
                ]
            }
        ),
        "EndpointSpec: duplicate published ports provided",
    ),
    # order: resources, restart, placement, refs come before the image check
    (
        task(ContainerSpec={"Image": ""}, Resources={"Limits": {"MemoryBytes": 5}}),
        "invalid memory value 5: Must be at least 4MiB",
    ),
    (
        task(ContainerSpec={"Image": "", "Secrets": [{"SecretName": "x"}]}),
        "malformed secret reference",
    ),
]


@pytest.mark.parametrize(("spec", "message"), SWARMKIT_CASES)
def test_swarmkit_errors(spec, message):
    assert service_error(spec) == (InvalidArgument, 400, RPC + message)


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        ("foo", "constraint expected one operator from ==, !="),
        ("node.role=manager", "constraint expected one operator from ==, !="),
        ("no de==x", "key 'no de' is invalid"),
        ("node.role==a<b", "value 'a<b' is invalid"),
    ],
)
def test_constraint_errors_come_back_as_code_unknown(constraint, message):
    spec = task(ContainerSpec={"Image": ""}, Placement={"Constraints": [constraint]})
    assert service_error(spec) == (RPCUnknown, 500, "rpc error: code = Unknown desc = " + message)


@pytest.mark.parametrize(
    "spec",
    [
        svc(Name=""),  # the daemon names it
        svc(Name="a_b-c"),
        svc(Name="a" * 63),
        svc(Mode={}),
        svc(Mode={"Replicated": None, "Global": {}}),
        svc(RollbackConfig={"Delay": -1, "Monitor": -1, "MaxFailureRatio": 5}),
        svc(UpdateConfig={"MaxFailureRatio": 1}),
        svc(Mode={"GlobalJob": {}}, RollbackConfig={"Parallelism": 1}),
        svc(EndpointSpec={"Ports": [{"TargetPort": 80}, {"TargetPort": 80}]}),
        svc(
            EndpointSpec={
                "Mode": "dnsrr",
                "Ports": [{"TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"}],
            }
        ),
        svc(
            EndpointSpec={
                "Ports": [
                    {"Protocol": "udp", "TargetPort": 80, "PublishedPort": 8080},
                    {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080},
                ]
            }
        ),
        task(Placement={"Constraints": ["foo.bar==x"], "Preferences": [{}]}),
        task(Placement={"Preferences": [{"Spread": {"SpreadDescriptor": "bogus"}}]}),
        ctr(Healthcheck={"Interval": 0, "Timeout": 0, "Retries": 0}),
        ctr(Healthcheck={"Interval": 1_000_000}),
        ctr(
            Configs=[{"ConfigID": "cid", "ConfigName": "c", "Runtime": {}}],
            Privileges={"CredentialSpec": {"Config": "cid"}},
        ),
        ctr(
            Secrets=[{"SecretID": "i", "SecretName": "s", "File": {"Name": "f"}}],
            Configs=[{"ConfigID": "a", "ConfigName": "c1", "File": {"Name": "f"}}],
        ),
        task(Resources={"Limits": {"NanoCPUs": 1_000_000, "MemoryBytes": 4 << 20}}),
    ],
)
def test_accepted_specs(spec):
    validate_service_spec(spec)


def test_swarmkit_only_checks():
    """Unreachable through the JSON API (the decoder or the daemon stops them first) but
    kept for specs built in-process."""
    assert str(fail(swarmkit_validate_service_spec, svc(Name=""))) == (
        RPC + "meta: name must be provided"
    )
    cases = [
        (svc(Mode={"Replicated": {"Replicas": -1}}), "Number of replicas must be non-negative"),
        (
            svc(Mode={"ReplicatedJob": {"MaxConcurrent": -1}}),
            "Maximum concurrent jobs must not be negative",
        ),
        (
            svc(Mode={"ReplicatedJob": {"TotalCompletions": -1}}),
            "Total completed jobs must not be negative",
        ),
        (svc(TaskTemplate={}), "TaskSpec: missing runtime"),
        (
            ctr(Configs=[{"ConfigID": "i", "ConfigName": "s"}]),
            "malformed config reference, no target provided",
        ),
    ]
    for spec, message in cases:
        assert str(fail(swarmkit_validate_service_spec, spec)) == RPC + message


# ---------------------------------------------------------------- template expansion hook


def _go_like_expand(s: str) -> str:
    if "{{" in s and "}}" not in s:
        raise ValueError("template: expansion:1: unclosed action")
    if "{{.Foo}}" in s:
        raise ValueError("bad field")
    return s.replace("{{.Task.Slot}}", DUMMY_CONTEXT["Task.Slot"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            ctr(Env=["A={{.Foo}}", "B"]),
            'expanding env failed: expanding env "A={{.Foo}}": bad field',
        ),
        (
            ctr(Hostname="{{.Node.ID"),
            "expanding hostname failed: template: expansion:1: unclosed action",
        ),
        (
            ctr(Mounts=[{"Type": "volume", "Source": "{{.Foo}}", "Target": "/a"}]),
            'expanding mounts failed: expanding mount source "{{.Foo}}": bad field',
        ),
        (
            ctr(Mounts=[{"Type": "volume", "Target": "/{{.Foo}}"}]),
            'expanding mounts failed: expanding mount target "/{{.Foo}}": bad field',
        ),
        (
            ctr(Mounts=[{"Target": "/a", "VolumeOptions": {"Labels": {"k": "{{.Foo}}"}}}]),
            'expanding mounts failed: expanding volume labels: expanding map entry "k"="{{.Foo}}":'
            " bad field",
        ),
        (
            ctr(
                Mounts=[
                    {
                        "Target": "/a",
                        "VolumeOptions": {"DriverConfig": {"Options": {"o": "{{.Foo}}"}}},
                    }
                ]
            ),
            "expanding mounts failed: expanding volume driver config: expanding map entry "
            '"o"="{{.Foo}}": bad field',
        ),
        (  # templates are expanded before the image is checked
            ctr(Image="", Hostname="{{.Foo}}"),
            "expanding hostname failed: bad field",
        ),
        (
            ctr(Mounts=[{"Target": "/{{.Task.Slot}}"}, {"Target": "/1"}]),
            "ContainerSpec: duplicate mount point: /1",
        ),
    ],
)
def test_template_expansion_hook(spec, message):
    e = fail(validate_service_spec, spec, expand=_go_like_expand)
    assert (type(e), str(e)) == (InvalidArgument, RPC + message)


# ================================================================ names and images


def test_validate_name_and_annotations():
    validate_name("a-b_c1")
    for name, message in [
        ("", "meta: name must be provided"),
        (None, "meta: name must be provided"),
        ("a\n", "name must be valid as a DNS name component"),
        ("a.b", "name must be valid as a DNS name component"),
        ("é", "name must be valid as a DNS name component"),
        ("b" * 64, "name must be 63 characters or fewer"),
    ]:
        assert str(fail(validate_name, name)) == RPC + message
    assert fail(validate_annotations, {"Labels": {}}).message == "meta: name must be provided"


@pytest.mark.timeout(5)
@pytest.mark.parametrize("name", ["a" * 5000 + "!", "a" * 5000 + "-"], ids=["bad-char", "dash"])
def test_dns_name_check_is_linear(name):
    """swarmkit's pattern `^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$` backtracks exponentially in
    Python's regexp engine on a long run of letters that then fails to match: it would never
    finish these names, and the timeout fails the test. RE2 (Go) and shoal's rewrite are
    linear: the answer comes at once."""
    assert str(fail(validate_name, name)) == RPC + "name must be valid as a DNS name component"


def test_config_or_secret_name():
    validate_config_or_secret_name("a.b-c_d")
    bad = "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end"
    assert fail(validate_config_or_secret_name, "").message == "name must be provided"
    assert fail(validate_config_or_secret_name, ".a").message.startswith(bad)
    assert fail(validate_config_or_secret_name, "a" * 65).message.startswith(bad)


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "busybox:latest",
        "library/busybox",
        "docker.io/busybox",
        "index.docker.io/busybox",
        "localhost/foo",
        "localhost:5000/foo:bar",
        "Foo/bar",  # distribution/reference v0.6: an upper-case first part is a domain
        "FOO.com/bar",
        "[::1]:5000/foo",
        "[::1]/foo",
        "sha256:" + "a" * 64,  # name "sha256", tag of 64 characters
        "a.b/c/d/e:t",
        "foo/bar__baz",
        "foo/bar--baz",
        "foo:" + "t" * 128,
        "foo@sha256:" + "a" * 64,
        "foo@sha384:" + "a" * 96,
        "foo@sha512:" + "a" * 128,
        "foo:tag@sha256:" + "a" * 64,
        "127.0.0.1:5000/x:y",
        "registry:5000",  # a tag, not a port
        "foo_bar",
        "foo.bar",
        "foo:_tag",
        "ex-ample.com:99999/x",
        "index.docker.io/" + "a" * 237,  # docker.io/library/… is 255 characters
    ],
)
def test_valid_image_references(image):
    assert is_valid_image_reference(image)


@pytest.mark.parametrize(
    "image",
    [
        "",
        "foo/Bar",
        "UPPER",
        "foo:",
        "foo::bar",
        "foo@sha256:" + "A" * 64,
        "foo@sha256:" + "a" * 63,
        "foo@md5:" + "a" * 32,
        "foo/bar___baz",
        "foo/-bar",
        "foo/bar.",
        "foo:" + "t" * 129,
        "x" * 250 + "/y",
        "a" * 256,
        "a" * 64,
        "foo bar",
        " foo",
        "foo\n",
        "registry:5000/",
        "-foo.com/bar",
        "_foo",
        "foo..bar",
        "fooé",
        "foo:-tag",
        "host:port/x",
        "index.docker.io/" + "a" * 238,  # 256 once normalised
    ],
)
def test_invalid_image_references(image):
    assert not is_valid_image_reference(image)


# ================================================================ updates and port conflicts

CURRENT = svc(
    Mode={"Replicated": {"Replicas": 1}},
    EndpointSpec={
        "Ports": [
            {"TargetPort": 80, "PublishedPort": 8080},
            {"TargetPort": 81, "PublishedPort": 9090, "PublishMode": "host"},
        ]
    },
)


def test_update_refusals():
    def upd(**change):
        new = copy.deepcopy(CURRENT)
        new.update(change)
        return fail(check_service_update, CURRENT, new)

    for e, message in [
        (upd(Name="renamed"), "renaming services is not supported"),
        (upd(Name=""), "renaming services is not supported"),
        (upd(Mode={"Global": {}}), "service mode change is not allowed"),
        (upd(Mode={"ReplicatedJob": {}}), "service mode change is not allowed"),
        (
            upd(Networks=[{"Target": "net1"}]),
            "networks must be migrated to TaskSpec before being changed",
        ),
    ]:
        assert (type(e), e.status, str(e)) == (
            Unimplemented,
            501,
            "rpc error: code = Unimplemented desc = " + message,
        )


def test_update_accepted():
    check_service_update(CURRENT, dict(CURRENT, Mode={}))
    check_service_update(CURRENT, dict(CURRENT, Mode={"Replicated": {"Replicas": 9}}))
    moved = dict(CURRENT, TaskTemplate=dict(CURRENT["TaskTemplate"], Networks=[{"Target": "n"}]))
    check_service_update(dict(CURRENT, Networks=[{"Target": "n"}]), moved)


OTHER = [{"ID": "kly39xhe7t77it21vi884ufl2", "Spec": dict(CURRENT, Name="pa"), "Endpoint": {}}]


@pytest.mark.parametrize(
    ("port", "message"),
    [
        (
            {"TargetPort": 80, "PublishedPort": 8080},
            "port '8080' is already in use by service 'pa' (kly39xhe7t77it21vi884ufl2)"
            " as an ingress port",
        ),
        (
            {"TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"},
            "port '8080' is already in use by service 'pa' (kly39xhe7t77it21vi884ufl2)"
            " as an ingress port",
        ),
        (
            {"TargetPort": 80, "PublishedPort": 9090},
            "port '9090' is already in use by service 'pa' (kly39xhe7t77it21vi884ufl2)"
            " as a host-published port",
        ),
    ],
)
def test_port_conflicts(port, message):
    e = fail(check_port_conflicts, {"EndpointSpec": {"Ports": [port]}}, OTHER)
    assert (type(e), str(e)) == (InvalidArgument, RPC + message)


def test_port_conflicts_accepted():
    def ok(port, services=OTHER, **kw):
        check_port_conflicts({"EndpointSpec": {"Ports": [port]}}, services, **kw)

    ok({"TargetPort": 80, "PublishedPort": 9090, "PublishMode": "host"})  # host+host coexist
    ok({"TargetPort": 80, "PublishedPort": 8080, "Protocol": "udp"})
    ok({"TargetPort": 80})
    ok({"TargetPort": 80, "PublishedPort": 8080}, service_id="kly39xhe7t77it21vi884ufl2")
    check_port_conflicts({}, OTHER)


def test_port_conflicts_see_allocated_ports():
    other = [
        {
            "ID": "x1",
            "Spec": {"Name": "auto"},
            "Endpoint": {
                "Ports": [
                    {
                        "Protocol": "tcp",
                        "TargetPort": 80,
                        "PublishedPort": 30000,
                        "PublishMode": "ingress",
                    }
                ]
            },
        }
    ]
    e = fail(check_port_conflicts, {"EndpointSpec": {"Ports": [{"PublishedPort": 30000}]}}, other)
    assert e.message == "port '30000' is already in use by service 'auto' (x1) as an ingress port"


# ================================================================ nodes


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, 'invalid Role: ""'),
        ({"Role": "boss", "Availability": "active"}, 'invalid Role: "boss"'),
        ({"Role": "worker"}, 'invalid Availability: ""'),
        ({"Role": "manager", "Availability": "x"}, 'invalid Availability: "x"'),
        (
            {"Role": 5},
            JSON + "number into Go struct field NodeSpec.Role of type swarm.NodeRole",
        ),
        (
            {"Labels": {"a": 1}},
            JSON + "number into Go struct field NodeSpec.Labels of type string",
        ),
    ],
)
def test_node_spec_errors(spec, message):
    e = fail(validate_node_spec, spec)
    assert (type(e), e.status, str(e)) == (InvalidParameter, 400, message)


def test_node_spec_accepted():
    validate_node_spec({"Role": "MANAGER", "Availability": "Active", "Labels": {"a": "b"}})
    validate_node_spec({"Name": "", "Role": "worker", "Availability": "drain"})


# ================================================================ cluster

SWARM = {
    "Name": "default",
    "Labels": {},
    "Orchestration": {"TaskHistoryRetentionLimit": 5},
    "Raft": {
        "SnapshotInterval": 10000,
        "KeepOldSnapshots": 0,
        "LogEntriesForSlowFollowers": 500,
        "ElectionTick": 10,
        "HeartbeatTick": 1,
    },
    "Dispatcher": {"HeartbeatPeriod": 5000000000},
    "CAConfig": {"NodeCertExpiry": 7776000000000000},
    "TaskDefaults": {},
    "EncryptionConfig": {"AutoLockManagers": False},
}


def swarm(section=None, **fields):
    spec = copy.deepcopy(SWARM)
    if section:
        spec[section].update(fields)
    else:
        spec.update(fields)
    return spec


@pytest.mark.parametrize(
    ("spec", "cls", "message"),
    [
        (swarm(Name="x"), InvalidParameter, 'swarm spec must be named "default"'),
        (
            swarm("Dispatcher", HeartbeatPeriod=-1),
            InvalidArgument,
            RPC + "heartbeat time period cannot be a negative duration",
        ),
        (
            swarm("CAConfig", NodeCertExpiry=1),
            InvalidArgument,
            RPC + "minimum certificate expiry time is: 1h0m0s",
        ),
        (
            swarm("CAConfig", NodeCertExpiry=-5),
            InvalidArgument,
            RPC + "minimum certificate expiry time is: 1h0m0s",
        ),
        (
            swarm("CAConfig", ExternalCAs=[{"Protocol": "x", "URL": "https://x"}]),
            InvalidParameter,
            'invalid protocol: "x"',
        ),
        (
            swarm("Raft", ElectionTick="x"),
            InvalidParameter,
            JSON + "string into Go struct field RaftConfig.Raft.ElectionTick of type int",
        ),
        (
            swarm("Raft", SnapshotInterval=-1),
            InvalidParameter,
            JSON + "number -1 into Go struct field RaftConfig.Raft.SnapshotInterval of type uint64",
        ),
        (
            {"Name": 5},
            InvalidParameter,
            JSON + "number into Go struct field Spec.Name of type string",
        ),
        (
            {"Name": "", "Dispatcher": {"HeartbeatPeriod": -1}},
            InvalidArgument,
            RPC + "heartbeat time period cannot be a negative duration",
        ),
    ],
)
def test_cluster_update_errors(spec, cls, message):
    e = fail(validate_cluster_spec, spec)
    assert (type(e), e.status, str(e)) == (cls, 400, message)


def test_cluster_update_accepted():
    validate_cluster_spec(SWARM)
    validate_cluster_spec({})  # zero values keep the current settings
    validate_cluster_spec(swarm("Orchestration", TaskHistoryRetentionLimit=-1))
    validate_cluster_spec(
        swarm(
            "CAConfig",
            NodeCertExpiry=3600 * 10**9,
            ExternalCAs=[{"Protocol": "CFSSL", "URL": "https://ca"}],
        )
    )


@pytest.mark.parametrize(
    ("spec", "cls", "status", "message"),
    [
        ({"Name": "x"}, InvalidParameter, 400, 'swarm spec must be named "default"'),
        (
            {"Dispatcher": {"HeartbeatPeriod": -1}},
            DaemonError,
            500,
            "error updating cluster settings: "
            + RPC
            + "heartbeat time period cannot be a negative duration",
        ),
        (
            {"CAConfig": {"ExternalCAs": [{"Protocol": "x"}]}},
            DaemonError,
            500,
            'error updating cluster settings: invalid protocol: "x"',
        ),
        (
            {"Dispatcher": {"HeartbeatPeriod": "x"}},
            InvalidParameter,
            400,
            JSON + "string into Go struct field DispatcherConfig.Spec.Dispatcher.HeartbeatPeriod"
            " of type time.Duration",
        ),
    ],
)
def test_cluster_init_errors(spec, cls, status, message):
    e = fail(validate_cluster_spec, spec, init=True)
    assert (type(e), e.status, str(e)) == (cls, status, message)
