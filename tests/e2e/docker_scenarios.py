"""The services whose API objects shoal must answer field for field as Docker's swarm mode does.

One list, imported by ``scripts/capture-docker-objects`` (which runs it against Docker's own
swarm mode and writes ``tests/fixtures/docker/<name>.json``) and by
``tests/e2e/test_docker_exact.py`` (which runs it against shoal and compares), so the
commands a fixture was recorded with and the commands the test runs can never drift: the
test checks that a fixture's commands are the ones below, and asks for a re-capture if not.

Each scenario is docker CLI command lines (``docker service create -d --name NAME …``, then
maybe ``docker service update -d …``), each followed by the task states to wait for. The
CLI runs with ``DOCKER_API_VERSION`` pinned to ``API_VERSION`` (Docker 20.10's), so the CLI
sends the same request bodies to both, and the objects are read at that API version. One
scenario creates its service with docker-py instead (``services.create(image, command,
name=…)``, at the same API version), which sends far less than the CLI does: what Docker
fills in by itself shows there.

The objects are those of the service named as the scenario, if it makes one. A step may
instead be a command Docker may refuse (``attempt``): how it ended is recorded under the
step's ``outcome`` name (exit status, what the CLI printed, the API's answer to its last
request), a failure is no error. A scenario of such steps only names its services otherwise:
what it is about is the refusals, not the objects. An ``attempt`` that succeeds is recorded
the same way: ``docker service logs --raw NAME`` after its tasks settled records what the
service's containers printed (the files its secrets and configs became, say).

A scenario may create secrets and configs first (``docker secret create NAME -``, ``docker
config create NAME -``, their data on stdin, nothing to wait for): the objects of those that
still exist at the end are recorded too, and they are removed with the scenario's services.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

API_VERSION = "1.41"
BUSYBOX = "shoal-test/busybox:1"
WHOAMI = "shoal-test/whoami:1"
# A long-running command that exits at once on SIGTERM (busybox `sleep` as PID 1 ignores it).
IDLE = ("sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.2; done')


@dataclass(frozen=True)
class Step:
    """One command and the task states it settles into: the sorted ``Status.State`` of all
    the service's tasks, and for an update the service's ``UpdateStatus.State``.

    ``via`` ``docker``: ``args`` follow ``docker`` on the command line; ``docker-py``:
    ``args`` are ``("services.create", name, image, *command)``. ``states`` None: nothing
    to wait for. ``outcome``: the command may fail, how it ended is recorded under this name
    (``input``: what it reads on stdin, a prompt's answer)."""

    args: tuple[str, ...]
    states: tuple[str, ...] | None = None
    update_state: str | None = None
    via: str = "docker"
    outcome: str | None = None
    input: str | None = None

    @property
    def command(self) -> list[str]:
        return [self.via, *self.args]

    @property
    def creates(self) -> str | None:
        """The name of the service this step creates, if it creates one."""
        if self.via == "docker-py":
            return self.args[1]
        if self.args[:2] == ("service", "create"):
            return self.args[self.args.index("--name") + 1]
        return None


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    about: str = ""

    @property
    def commands(self) -> list[list[str]]:
        return [s.command for s in self.steps]

    @property
    def services(self) -> list[str]:
        """Every service the scenario creates (or tries to)."""
        return [n for s in self.steps if (n := s.creates)]

    @property
    def secrets(self) -> list[str]:
        """Every secret the scenario creates (or tries to), in order."""
        return self._created("secret")

    @property
    def configs(self) -> list[str]:
        """Every config the scenario creates (or tries to), in order."""
        return self._created("config")

    def _created(self, kind: str) -> list[str]:
        # `docker secret|config create [OPTIONS] NAME FILE|-`
        names = [s.args[-2] for s in self.steps if s.args[:2] == (kind, "create")]
        return list(dict.fromkeys(names))


def create(name: str, options: str, *command: str) -> tuple[str, ...]:
    """``docker service create -d --name NAME OPTIONS… COMMAND…`` (options split as a shell
    would)."""
    return ("service", "create", "-d", "--name", name, *shlex.split(options), *command)


def update(name: str, options: str) -> tuple[str, ...]:
    return ("service", "update", "-d", *shlex.split(options), name)


def secret(name: str, data: str, options: str = "") -> Step:
    """``docker secret create OPTIONS… NAME -``, the data on stdin."""
    return Step(("secret", "create", *shlex.split(options), name, "-"), input=data)


def config(name: str, data: str, options: str = "") -> Step:
    """``docker config create OPTIONS… NAME -``, the data on stdin."""
    return Step(("config", "create", *shlex.split(options), name, "-"), input=data)


def attempt(outcome: str, args: tuple[str, ...], input: str | None = None) -> Step:
    """A command Docker may refuse, how it ended recorded as `outcome`."""
    return Step(args, outcome=outcome, input=input)


FULL = f"""
    --replicas 1
    --env PLAIN=1 --env 'SPACED=two words'
    --label com.example.tier=fixture --label com.example.empty=
    --container-label com.example.role=worker
    --mount type=volume,source=fixture-data,target=/data,volume-label=purpose=fixture,volume-nocopy=true
    --mount type=bind,source=/etc,target=/host-etc,readonly
    --mount type=tmpfs,target=/scratch,tmpfs-size=16777216,tmpfs-mode=1777
    --limit-cpu 0.5 --limit-memory 64MiB --limit-pids 200
    --reserve-cpu 0.1 --reserve-memory 8MiB
    --restart-condition on-failure --restart-delay 2s --restart-max-attempts 3
    --restart-window 30s
    --update-parallelism 2 --update-delay 1s --update-failure-action rollback
    --update-monitor 2s --update-max-failure-ratio 0.25 --update-order start-first
    --rollback-parallelism 3 --rollback-delay 2s --rollback-failure-action continue
    --rollback-monitor 3s --rollback-max-failure-ratio 0.5 --rollback-order stop-first
    --health-cmd true --health-interval 1s --health-timeout 2s --health-retries 2
    --health-start-period 1s
    --publish published=28080,target=8080,mode=host,protocol=tcp
    --publish published=28081,target=8081,mode=host,protocol=udp
    --hostname 'fixture-{{{{.Task.Slot}}}}'
    --user 1000:1000 --group 2000 --workdir /work
    --init --stop-signal SIGINT --stop-grace-period 3s
    --dns 192.0.2.53 --dns-search example.test --dns-option ndots:2
    --host db.example.test:192.0.2.10
    --cap-add NET_ADMIN --cap-drop MKNOD
    --read-only --ulimit nofile=1024:2048 --sysctl net.core.somaxconn=512
    --log-driver json-file --log-opt max-size=1m
    --constraint node.role==manager --placement-pref spread=node.labels.zone
    --replicas-max-per-node 2
    {BUSYBOX}
"""  # noqa: E501

SECRETS_CONFIGS = f"""
    --env GREETING=hello
    --secret fx-s1
    --secret source=fx-s2,target=fx-t2,uid=1000,gid=1000,mode=0400
    --secret source=fx-s1,target=/etc/fx-abs
    --config source=fx-c1,target=/etc/fx-c1,uid=1000,gid=2000,mode=0440
    --config fx-c2
    --config source=fx-tpl,target=/fx-tpl
    {BUSYBOX}
"""
# Docker 20.10 renders .Node.Hostname empty in a payload template; env reads the spec's env only.
TEMPLATE = (
    "service={{ .Service.Name }} slot={{ .Task.Slot }} task={{ .Task.Name }} "
    'node=[{{ .Node.Hostname }}] greeting={{ env "GREETING" }} home=[{{ env "HOME" }}]\n'
    'secret=[{{ secret "fx-t2" }}] config=[{{ config "/etc/fx-c1" }}]\n'
)
# What the container sees: each file's owner, mode and size, the mounts (sorted: the engine
# orders mounts of one depth at random), the template's output.
SHOW_FILES = (
    'stat -c "%n %u:%g %a %s" /run/secrets/* /etc/fx-abs /etc/fx-c1 /fx-c2 /fx-tpl; '
    'grep -E " /(run/secrets|etc/fx-|fx-)" /proc/mounts | sort; cat /fx-tpl; ' + IDLE[2]
)

MOUNTS = f"""
    --mount type=volume,source=mounts-{{{{.Task.Slot}}}},target=/data,volume-driver=local,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/tmp,volume-label=purpose=fixture
    --mount type=volume,source=mounts-ro,target=/ro,readonly,volume-nocopy
    --mount type=volume,target=/anonymous
    --mount type=bind,source=/usr,target=/host-usr,bind-propagation=private
    --mount type=bind,source=/etc,target=/host-etc,readonly,bind-nonrecursive
    --mount type=tmpfs,target=/scratch,tmpfs-size=1m,tmpfs-mode=700
    {BUSYBOX}
"""  # noqa: E501

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "minimal",
        (Step(create("minimal", BUSYBOX, *IDLE), ("running",)),),
        "an image and a command: everything else is what the CLI and Docker default",
    ),
    Scenario(
        "minimal-docker-py",
        (
            Step(
                ("services.create", "minimal-docker-py", BUSYBOX, *IDLE),
                ("running",),
                via="docker-py",
            ),
        ),
        "an image and a command from docker-py, which sends no defaults at all",
    ),
    Scenario(
        "replicated",
        (
            Step(
                create(
                    "replicated",
                    f"--replicas 3 --env A=1 --label tier=web --container-label role=web {WHOAMI}",
                ),
                ("running",) * 3,
            ),
        ),
        "three replicas of a server, with env and labels",
    ),
    Scenario(
        "full",
        (Step(create("full", FULL, "sleep", "1d"), ("running",)),),
        "every container, resource, restart, update, rollback, healthcheck, port and "
        "placement option the CLI has for a service without networks",
    ),
    Scenario(
        "dnsrr-host-port",
        (
            Step(
                create(
                    "dnsrr-host-port",
                    f"--endpoint-mode dnsrr --publish published=28090,target=80,mode=host {WHOAMI}",
                ),
                ("running",),
            ),
        ),
        "DNS round-robin endpoint with one host-mode port",
    ),
    Scenario(
        "global",
        (Step(create("global", f"--mode global {BUSYBOX}", *IDLE), ("running",)),),
        "one task per node",
    ),
    Scenario(
        "replicated-job",
        (
            Step(
                create(
                    "replicated-job",
                    f"--mode replicated-job --replicas 2 --max-concurrent 1 {BUSYBOX} true",
                ),
                ("complete", "complete"),
            ),
        ),
        "a job of two completions, one at a time",
    ),
    Scenario(
        "global-job",
        (Step(create("global-job", f"--mode global-job {BUSYBOX} true"), ("complete",)),),
        "a job run once on every node",
    ),
    Scenario(
        "updated",
        (
            Step(
                create(
                    "updated", f"--update-monitor 500ms --stop-grace-period 2s {BUSYBOX}", *IDLE
                ),
                ("running",),
            ),
            Step(
                update("updated", "--env-add UPDATED=1 --label-add updated=yes"),
                ("running", "shutdown"),
                update_state="completed",
            ),
        ),
        "a service updated once: PreviousSpec, UpdateStatus and a replaced task",
    ),
    Scenario(
        "exited-nonzero",
        (
            Step(
                create("exited-nonzero", f"--restart-condition none {BUSYBOX} sh -c 'exit 3'"),
                ("failed",),
            ),
        ),
        "a task whose container exited with 3 and is not restarted",
    ),
    Scenario(
        "port-conflict",
        (
            Step(create("port-holder", f"-p 8080:80 {WHOAMI}")),
            attempt("create_same_port", create("port-taker", f"-p 8080:80 {WHOAMI}")),
            attempt("update_publish_add_same", update("port-holder", "--publish-add 8080:80")),
            attempt("create_port_twice", create("port-twice", f"-p 8081:80 -p 8081:81 {WHOAMI}")),
            attempt(
                "create_dnsrr_ingress_port",
                create("port-dnsrr", f"--endpoint-mode dnsrr -p 8082:80 {WHOAMI}"),
            ),
        ),
        "refused ingress ports: one another service has, one published twice in a spec, one "
        "with dnsrr; and one added again to the service that has it (Docker takes that)",
    ),
    Scenario(
        "network-rm-ingress",
        (
            Step(create("ingress-user", f"-p 8080:80 {WHOAMI}")),
            attempt("network_rm_ingress", ("network", "rm", "ingress"), input="y\n"),
        ),
        "docker network rm ingress (its prompt answered y) while a service publishes a port",
    ),
    Scenario(
        "ingress-port",
        (Step(create("ingress-port", f"-p 8080:80 {WHOAMI}"), ("running",)),),
        "a port published on the ingress network: the service's VIP there, its task's address",
    ),
    Scenario(
        "dynamic-port",
        (
            Step(
                create("dynamic-port", f"-p 80 --publish target=53,protocol=udp {WHOAMI}"),
                ("running",),
            ),
        ),
        "ingress ports without a published port: the ports Docker picks (tcp and udp)",
    ),
    Scenario(
        "publish-update",
        (
            Step(
                create("publish-update", f"--update-monitor 500ms -p 8080:80 {WHOAMI}"),
                ("running",),
            ),
            Step(
                update("publish-update", "--publish-rm 80"),
                ("running", "shutdown"),
                update_state="completed",
            ),
        ),
        "every ingress port removed by service update: the endpoint keeps its mode",
    ),
    Scenario(
        "secrets-configs",
        (
            secret("fx-s1", "secret one\n"),
            secret("fx-s2", "two", "--label com.example.fixture=yes"),
            config("fx-c1", "config one\n"),
            config("fx-c2", "config two", "--label com.example.fixture=yes"),
            config("fx-tpl", TEMPLATE, "--template-driver golang"),
            Step(create("secrets-configs", SECRETS_CONFIGS, "sh", "-c", SHOW_FILES), ("running",)),
            attempt("container_files", ("service", "logs", "--raw", "secrets-configs")),
        ),
        "secrets and configs given to a service: default, relative and absolute targets, uid, "
        "gid and mode, a golang template (service, slot, node, env, a secret and a config by "
        "target); what the container sees (owner, mode, size, tmpfs mounts, the template's "
        "output)",
    ),
    Scenario(
        "secret-rotation",
        (
            secret("fx-rot-v1", "key one"),
            secret("fx-rot-v2", "key two"),
            Step(
                create(
                    "secret-rotation",
                    f"--update-monitor 500ms --secret source=fx-rot-v1,target=app-key {BUSYBOX}",
                    *IDLE,
                ),
                ("running",),
            ),
            Step(
                update(
                    "secret-rotation",
                    "--secret-rm fx-rot-v1 --secret-add source=fx-rot-v2,target=app-key",
                ),
                ("running", "shutdown"),
                update_state="completed",
            ),
        ),
        "a secret rotated under the same target by --secret-rm/--secret-add: a rolling update "
        "that replaces the task (PreviousSpec keeps the old reference)",
    ),
    Scenario(
        "secret-refusals",
        (
            secret("fx-used", "used"),
            secret("fx-other", "other"),
            secret("fx-gone", "gone"),
            config("fx-cused", "used"),
            Step(
                create(
                    "secret-user",
                    f"--secret fx-used --secret source=fx-other,target=other "
                    f"--config fx-cused {BUSYBOX}",
                    *IDLE,
                )
            ),
            attempt("secret_rm_in_use", ("secret", "rm", "fx-used")),
            attempt("config_rm_in_use", ("config", "rm", "fx-cused")),
            attempt("secret_rm_several_one_missing", ("secret", "rm", "fx-gone", "fx-nope")),
            attempt("secret_inspect_missing", ("secret", "inspect", "fx-nope")),
            attempt("secret_create_duplicate", secret("fx-used", "again").args, input="again"),
            attempt("config_create_duplicate", config("fx-cused", "again").args, input="again"),
            attempt("secret_create_bad_name", ("secret", "create", "fx bad", "-"), input="x"),
            attempt("secret_create_name_65", ("secret", "create", "f" * 65, "-"), input="x"),
            attempt("secret_create_name_64", ("secret", "create", "g" * 64, "-"), input="x"),
            attempt("secret_create_empty_name", ("secret", "create", "", "-"), input="x"),
            attempt("config_create_bad_name", ("config", "create", "fx-bad-", "-"), input="x"),
            attempt("secret_create_empty_data", ("secret", "create", "fx-empty", "-"), input=""),
            attempt(
                "secret_create_500k",
                ("secret", "create", "fx-big", "-"),
                input="x" * (500 * 1024),
            ),
            attempt(
                "config_create_1000k",
                ("config", "create", "fx-cbig", "-"),
                input="x" * (1000 * 1024),
            ),
            attempt(
                "create_duplicate_target",
                create(
                    "fx-dup-target",
                    f"--secret source=fx-used,target=same --secret source=fx-other,target=same "
                    f"{BUSYBOX}",
                    *IDLE,
                ),
            ),
            attempt(
                "create_duplicate_config_target",
                create("fx-dup-ctarget", f"--config fx-cused --config fx-cused {BUSYBOX}", *IDLE),
            ),
            attempt(
                "create_missing_secret",
                create("fx-missing", f"--secret fx-nope {BUSYBOX}", *IDLE),
            ),
            attempt(
                "create_missing_config",
                create("fx-cmissing", f"--config fx-cnope {BUSYBOX}", *IDLE),
            ),
            attempt(
                "update_add_conflicting_target",
                update("secret-user", "--secret-add source=fx-other,target=fx-used"),
            ),
            attempt(
                "create_dotdot_target",
                create(
                    "fx-dotdot", f"--secret source=fx-used,target=../../etc/fx-x {BUSYBOX}", *IDLE
                ),
            ),
        ),
        "refused secrets and configs: removed while a service uses them, several removed with "
        "one missing, duplicate and bad names, empty and too large data, duplicate and "
        "conflicting targets, a missing secret or config; and a target with .. (Docker takes it)",
    ),
    Scenario(
        "mounts",
        (Step(create("mounts", MOUNTS, *IDLE), ("running",)),),
        "every kind of mount the CLI makes: a volume with a driver, options and labels whose "
        "name is a template, a read-only one without copy, an anonymous one, binds with "
        "propagation and non-recursive, tmpfs with size and mode",
    ),
)

BY_NAME = {s.name: s for s in SCENARIOS}
