"""The deployment configs in cluster_configs/: Ray's own checks, then what Ray does not check.

Ray's launcher schema covers field names and types. These tests add our label convention
(luma.io/cluster, luma.io/accelerator, luma.io/burst), that every shell command parses with
`bash -n`, that the Ray CLI flags used exist in the installed Ray, and the Slurm script's
headers, SIGTERM trap and drain. Only Ray's config and CLI modules are imported; no cluster
starts.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

CONFIG_DIR = Path(__file__).resolve().parents[2] / "cluster_configs"
YAML_FILES = sorted(CONFIG_DIR.glob("*.yaml"))
SBATCH_FILES = sorted(CONFIG_DIR.glob("*.sbatch"))
ACCELERATORS = {"cpu", "nvidia-h100", "amd-mi300x"}
COMMAND_LISTS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)
# Node-type entries may override these lists for their own nodes.
NODE_TYPE_COMMAND_LISTS = ("initialization_commands", "worker_setup_commands")
RAY_SUBCOMMANDS = ("start", "stop", "drain-node", "list")


def load(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    assert isinstance(config, dict), f"{path.name}: top level is not a mapping"
    return config


def command_lists(path: Path) -> dict[str, list[str]]:
    """Every list of shell commands in a launcher config, by its place in the file."""
    config = load(path)
    found = {name: config[name] for name in COMMAND_LISTS if name in config}
    for node_type, spec in (config.get("available_node_types") or {}).items():
        for name in NODE_TYPE_COMMAND_LISTS:
            if name in spec:
                found[f"available_node_types.{node_type}.{name}"] = spec[name]
    return found


def start_commands_by_node_type(config: dict[str, Any]) -> dict[str, list[str]]:
    """The start commands each kind of node runs. Workers of every type share one list; the
    local provider has no node types, just the head and its workers."""
    node_types = config.get("available_node_types") or {"head": {}, "workers": {}}
    head = config.get("head_node_type", "head")
    return {
        name: config.get("head_start_ray_commands" if name == head else "worker_start_ray_commands")
        or []
        for name in node_types
    }


def logical_lines(text: str) -> list[str]:
    """Shell text without full-line comments, continuation lines joined, `$(...)` replaced by
    a word (so its `)` does not end the command), split into lines."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return re.sub(r"\$\([^()]*\)", "SUBST", joined).splitlines()


def ray_invocations(text: str, subcommand: str) -> list[str]:
    """The argument text of each `ray <subcommand>` call, up to the end of that command."""
    calls = []
    for line in logical_lines(text):
        for match in re.finditer(rf"(?<![\w-])ray\s+{re.escape(subcommand)}\b(.*)", line):
            calls.append(re.split(r"[;|&')`]", match.group(1))[0])
    return calls


def labels_of(ray_start_args: str) -> dict[str, str] | None:
    """The --labels value of one `ray start` call as a dict, or None without --labels."""
    match = re.search(r"--labels[= ]\s*(?:\"([^\"]*)\"|'([^']*)'|(\S+))", ray_start_args)
    if match is None:
        return None
    text = next(group for group in match.groups() if group is not None)
    pairs = [pair.split("=", 1) for pair in text.split(",") if pair.strip()]
    assert all(len(pair) == 2 for pair in pairs), f"--labels {text!r}: not key=value pairs"
    return {key.strip(): value.strip() for key, value in pairs}


def accelerator_kinds(command: str, value: str) -> set[str]:
    """What a luma.io/accelerator value can be: the literal, or every value the command
    assigns to the shell variable it names (`accel=cpu` ... `${accel}`)."""
    variable = re.fullmatch(r"\$\{?(\w+)\}?", value)
    if variable is None:
        return {value}
    return set(re.findall(rf"(?<![\w$]){variable.group(1)}=([\w.-]+)", command))


def check_label_syntax(labels: dict[str, str]) -> None:
    """Ray's own key and value rules; values that the shell fills in are left to Ray."""
    from ray._private.label_utils import validate_label_key, validate_label_value

    for key, value in labels.items():
        error = validate_label_key(key)
        assert error is None, error
        if "$" not in value:
            validate_label_value(value)


@functools.cache
def ray_cli_options(subcommand: str) -> frozenset[str]:
    with warnings.catch_warnings():  # Ray's CLI imports Serve, whose models warn on import
        warnings.simplefilter("ignore")
        from ray.scripts.scripts import cli

    command = cli.commands[subcommand]
    return frozenset(opt for param in command.params for opt in param.opts)


def bash_n(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "script.sh"
    path.write_text(script)
    return subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)


def sbatch_directives(text: str) -> list[str]:
    """The #SBATCH lines sbatch reads: those before the first command; it ignores the rest."""
    directives = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        if stripped.startswith("#SBATCH"):
            directives.append(stripped.removeprefix("#SBATCH").strip())
    return directives


def ids_of(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


COMMAND_LIST_CASES = [
    pytest.param(path, name, id=f"{path.name}:{name}")
    for path in YAML_FILES
    for name in command_lists(path)
]
NODE_TYPED_FILES = [path for path in YAML_FILES if "available_node_types" in load(path)]


def test_configs_are_present() -> None:
    assert len(YAML_FILES) >= 2, f"launcher configs missing from {CONFIG_DIR}"
    assert SBATCH_FILES, f"no Slurm script in {CONFIG_DIR}"


@pytest.mark.parametrize("path", YAML_FILES, ids=ids_of(YAML_FILES))
def test_yaml_passes_ray_launcher_schema(path: Path) -> None:
    """The file as written against ray-schema.json, then the config `ray up` builds from it
    (provider defaults merged) through Ray's validate_config."""
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load(path)
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(prepare_config(config))


@pytest.mark.parametrize("path", YAML_FILES, ids=ids_of(YAML_FILES))
def test_every_node_starts_ray_with_cluster_and_accelerator_labels(path: Path) -> None:
    """Each `ray start` names the cluster and the accelerator kind, except where the
    autoscaler applies the node type's `labels` (AWS workers): there the node type's
    luma.io/accelerator is the node's, and no start command detects the hardware again."""
    clusters = set()
    config = load(path)
    typed = config.get("available_node_types") or {}
    for node_type, commands in start_commands_by_node_type(config).items():
        declared = (typed.get(node_type) or {}).get("labels") or {}
        starts = [
            (command, args) for command in commands for args in ray_invocations(command, "start")
        ]
        assert starts, f"{path.name}: node type {node_type} has no `ray start` command"
        for command, args in starts:
            labels = labels_of(args)
            where = f"{path.name}: node type {node_type}: ray start{args}"
            assert labels is not None, f"{where}: no --labels"
            assert {"luma.io/cluster", "luma.io/accelerator"} <= {*labels, *declared}, where
            assert "luma.io/cluster" in labels, where
            check_label_syntax(labels)
            kind = labels.get("luma.io/accelerator", declared.get("luma.io/accelerator", ""))
            kinds = accelerator_kinds(command, kind)
            assert kinds, f"{where}: luma.io/accelerator is never assigned"
            assert kinds <= ACCELERATORS, f"{where}: unknown kind(s) {kinds - ACCELERATORS}"
            clusters.add(labels["luma.io/cluster"])
    assert len(clusters) == 1, f"{path.name}: nodes disagree on luma.io/cluster: {clusters}"


@pytest.mark.parametrize("path", NODE_TYPED_FILES, ids=ids_of(NODE_TYPED_FILES))
def test_node_type_labels_match_resources_and_start_commands(path: Path) -> None:
    """The autoscaler applies a node type's `labels` over --labels, so they must agree: same
    cluster, a kind the start command can produce, and GPUs exactly on GPU kinds."""
    config = load(path)
    starts = start_commands_by_node_type(config)
    for node_type, spec in config["available_node_types"].items():
        labels = spec.get("labels") or {}
        where = f"{path.name}: node type {node_type}"
        assert {"luma.io/cluster", "luma.io/accelerator"} <= labels.keys(), f"{where}: labels"
        check_label_syntax(labels)
        kind = labels["luma.io/accelerator"]
        assert kind in ACCELERATORS, f"{where}: unknown accelerator {kind!r}"
        gpus = spec["resources"].get("GPU", 0)
        assert (gpus > 0) == (kind != "cpu"), f"{where}: {kind} with GPU={gpus}"
        for command in starts[node_type]:
            for args in ray_invocations(command, "start"):
                started = labels_of(args) or {}
                assert started.get("luma.io/cluster") == labels["luma.io/cluster"], where
                if "luma.io/accelerator" not in started:
                    continue  # the node type's label is the node's
                produced = accelerator_kinds(command, started["luma.io/accelerator"])
                assert kind in produced, f"{where}: start command yields {produced}, not {kind}"


@pytest.mark.parametrize("path", YAML_FILES, ids=ids_of(YAML_FILES))
def test_every_node_gets_the_auth_token_and_token_mode(path: Path) -> None:
    """Ray 2.60 runs with token auth: a node without the head's token cannot join."""
    config = load(path)
    targets = [remote for remote in config.get("file_mounts") or {} if remote.strip("/")]
    assert any(t.endswith(".ray/auth_token") for t in targets), f"{path.name}: token not mounted"
    for name in ("head_start_ray_commands", "worker_start_ray_commands"):
        for command in config.get(name) or []:
            for line in logical_lines(command):
                if re.search(r"(?<![\w-])ray\s+start\b", line):
                    assert re.search(r"\bRAY_AUTH_MODE=token\s", line), f"{path.name}: {line}"


@pytest.mark.parametrize("path,name", COMMAND_LIST_CASES)
def test_command_list_parses_with_bash_n(path: Path, name: str, tmp_path: Path) -> None:
    """The launcher runs each command in its own shell: each goes into its own subshell, so a
    quote or `if` left open in one command fails here too."""
    commands = command_lists(path)[name]
    assert isinstance(commands, list), f"{path.name}: {name} is not a list"
    script = "".join(f"(\n{command}\n)\n" for command in commands)
    result = bash_n(script, tmp_path)
    assert result.returncode == 0, f"{path.name}: {name}:\n{result.stderr}\n{script}"


@pytest.mark.parametrize("path", YAML_FILES + SBATCH_FILES, ids=ids_of(YAML_FILES + SBATCH_FILES))
def test_ray_cli_flags_exist_in_installed_ray(path: Path) -> None:
    if path.suffix == ".yaml":
        text = "\n".join(command for cmds in command_lists(path).values() for command in cmds)
    else:
        text = path.read_text()
    used = 0
    for subcommand in RAY_SUBCOMMANDS:
        for args in ray_invocations(text, subcommand):
            flags = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", args))
            unknown = flags - ray_cli_options(subcommand)
            assert not unknown, f"{path.name}: ray {subcommand}: unknown flag(s) {unknown}"
            used += 1
    assert used, f"{path.name}: no ray command found"


@pytest.mark.parametrize("path", SBATCH_FILES, ids=ids_of(SBATCH_FILES))
def test_sbatch_headers_come_before_the_first_command(path: Path) -> None:
    directives = sbatch_directives(path.read_text())
    for option in ("--time", "--nodes", "--gpus-per-node", "--exclusive"):
        assert any(d.split("=")[0] == option for d in directives), f"{path.name}: no {option}"
    all_lines = [line for line in path.read_text().splitlines() if line.startswith("#SBATCH")]
    assert len(all_lines) == len(directives), f"{path.name}: #SBATCH after the first command"


@pytest.mark.parametrize("path", SBATCH_FILES, ids=ids_of(SBATCH_FILES))
def test_sbatch_traps_term_and_drains_the_nodes(path: Path) -> None:
    text = path.read_text()
    assert re.search(r"^\s*set -euo pipefail\s*$", text, re.M), f"{path.name}: set -euo pipefail"
    traps = [
        shlex.split(line, comments=True)
        for line in logical_lines(text)
        if line.lstrip().startswith("trap ")
    ]
    handlers = [words[1] for words in traps if "TERM" in words[2:]]
    assert any(h not in ("", "-") for h in handlers), f"{path.name}: no TERM handler: {handlers}"
    assert re.search(r"squeue\b.*-o\s*%e|scontrol show job", text), f"{path.name}: no end time"
    drains = ray_invocations(text, "drain-node")
    assert drains, f"{path.name}: never calls ray drain-node"
    for args in drains:
        for flag in ("--node-id", "--reason-message", "--deadline-remaining-seconds"):
            assert flag in args, f"{path.name}: ray drain-node without {flag}"
        reason = re.search(r"--reason\s+(\S+)", args)
        assert reason and reason.group(1) == "DRAIN_NODE_REASON_PREEMPTION", f"{path.name}: reason"
    # `ray stop` would stop every Ray on a node; the script kills its own Ray step instead.
    assert re.search(r"scancel --signal=KILL", text), f"{path.name}: never stops its Ray step"
    assert "--signal=B:USR1@" in " ".join(sbatch_directives(text)), f"{path.name}: no USR1 lead"
    usr1 = [words[1] for words in traps if "USR1" in words[2:]]
    assert any(h not in ("", "-") for h in usr1), f"{path.name}: no USR1 handler: {usr1}"


@pytest.mark.parametrize("path", SBATCH_FILES, ids=ids_of(SBATCH_FILES))
def test_sbatch_joins_with_burst_labels(path: Path) -> None:
    text = path.read_text()
    starts = ray_invocations(text, "start")
    assert starts and all("--block" in args and "--address" in args for args in starts), (
        f"{path.name}: each node needs `ray start --address ... --block`"
    )
    code = "\n".join(logical_lines(text))
    label_texts = re.findall(r"luma\.io/cluster=[^\"'\s]+", code)
    assert label_texts, f"{path.name}: no luma.io labels"
    for label_text in label_texts:
        labels = labels_of(f"--labels {label_text}") or {}
        check_label_syntax(labels)
        assert labels.get("luma.io/cluster", "").startswith("slurm-"), label_text
        assert labels.get("luma.io/burst") == "true", label_text
        assert "luma.io/leave-by" in labels and "luma.io/leave-notice-s" in labels, label_text
    # Each node appends the accelerator kind it reads from its hardware (or LUMA_ACCELERATOR).
    accelerators = re.findall(r"luma\.io/accelerator=([^\"'\s,]+)", code)
    assert accelerators, f"{path.name}: no luma.io/accelerator label"
    for value in accelerators:
        kinds = accelerator_kinds(code, value)
        assert kinds and kinds <= ACCELERATORS, f"{path.name}: accelerator {value}: {kinds}"
    assert "RAY_AUTH_MODE=token" in code, f"{path.name}: token auth not set"


@pytest.mark.parametrize("path", SBATCH_FILES, ids=ids_of(SBATCH_FILES))
def test_sbatch_parses_with_bash_n(path: Path) -> None:
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_package_pins_the_ray_the_clusters_install_and_a_safe_multipart() -> None:
    """luma_ray uses a private Ray API: the package admits the minor release the cluster
    configs install and no later one. python-multipart below 0.0.18 (and before later fixes)
    has known denial-of-service bugs in the parser the API's forms go through."""
    pyproject = tomllib.loads((CONFIG_DIR.parent / "pyproject.toml").read_text())
    server = pyproject["project"]["optional-dependencies"]["server"]  # where Ray is needed
    pins = {r.name: r.specifier for r in map(Requirement, server)}
    installed = {
        m for path in YAML_FILES for m in re.findall(r"ray\[[a-z,]+\]==([0-9.]+)", path.read_text())
    }
    assert installed == {"2.60.0"}
    assert pins["ray"].contains("2.60.0") and not pins["ray"].contains("2.61.0")
    for vulnerable in ("0.0.9", "0.0.17", "0.0.25", "0.0.29"):
        assert not pins["python-multipart"].contains(vulnerable), vulnerable


# ---- onprem-tailscale.yaml: Ray's ports answer on the tailnet only ------------------------

TAILSCALE = CONFIG_DIR / "onprem-tailscale.yaml"
EPHEMERAL = (32768, 60999)
"""Linux's default ``net.ipv4.ip_local_port_range``: where Ray's port-0 servers (raylet,
object manager, agents, metrics) land."""


def nft_rules(command: str) -> list[str]:
    """The rules of the nftables file a command writes with a heredoc (``<<'NFT'``)."""
    match = re.search(r"<<'NFT'\n(.*?)\nNFT\n", command, re.S)
    return [line.strip() for line in match.group(1).splitlines()] if match else []


def port_ranges(rule: str) -> list[tuple[int, int]]:
    """``tcp dport { 22, 10001-19999 } drop`` -> ``[(22, 22), (10001, 19999)]``."""
    match = re.search(r"dport\s+(\{[^}]*\}|\S+)", rule)
    assert match, rule
    ranges = []
    for item in match.group(1).strip("{}").split(","):
        low, _, high = item.strip().partition("-")
        ranges.append((int(low), int(high or low)))
    return ranges


def ray_default_ports() -> dict[str, tuple[int, int]]:
    """The ports a node of the config opens by the installed Ray's defaults, and luma-ray's
    HTTP API."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ray._private import ray_constants
        from ray.scripts.scripts import cli

        from luma_ray.config import RuntimeConfig

    defaults = {p.name: p.default for p in cli.commands["start"].params}
    return {
        "GCS": (ray_constants.DEFAULT_PORT, ray_constants.DEFAULT_PORT),
        "dashboard": (defaults["dashboard_port"], defaults["dashboard_port"]),
        "dashboard agent": (
            defaults["dashboard_agent_listen_port"],
            defaults["dashboard_agent_listen_port"],
        ),
        "Ray client": (10001, 10001),  # `ray start --head` without --ray-client-server-port
        "workers": (defaults["min_worker_port"], defaults["max_worker_port"]),
        "random (port 0)": EPHEMERAL,
        "Serve HTTP": (RuntimeConfig(data_dir=".").http_port,) * 2,
    }


def test_tailscale_nodes_drop_ray_ports_off_the_tailnet_before_ray_starts() -> None:
    """Ray's gRPC servers listen on 0.0.0.0 whatever --node-ip-address says: every node loads
    a firewall that accepts loopback, tailscale0, established connections and SSH, and drops
    every Ray port on other interfaces, before its first `ray start`."""
    config = load(TAILSCALE)
    for role in ("head", "worker"):
        commands = [
            *config.get("initialization_commands", []),
            *config.get("setup_commands", []),
            *config.get(f"{role}_setup_commands", []),
            *config.get(f"{role}_start_ray_commands", []),
        ]
        loads = [i for i, c in enumerate(commands) if re.search(r"\bnft\s+-f\b", c)]
        starts = [i for i, c in enumerate(commands) if ray_invocations(c, "start")]
        assert loads and starts, f"{role}: firewall {loads}, ray start {starts}"
        assert loads[0] < starts[0], f"{role}: the firewall loads after `ray start`"
    [command] = [c for c in config["setup_commands"] if re.search(r"\bnft\s+-f\b", c)]
    rules = nft_rules(command)
    accepts = [
        'iifname { "lo", "tailscale0" } accept',
        "ct state established,related accept",
        "tcp dport 22 accept",
    ]
    assert all(rule in rules for rule in accepts), rules
    [drop] = [rule for rule in rules if rule.startswith("tcp dport") and rule.endswith("drop")]
    assert all(rules.index(rule) < rules.index(drop) for rule in accepts), "accepts come first"
    dropped = port_ranges(drop)
    assert not any(low <= 22 <= high for low, high in dropped), "SSH must stay reachable"
    for name, (low, high) in ray_default_ports().items():
        assert any(a <= low and high <= b for a, b in dropped), f"{name} {low}-{high} open"
    assert "policy accept" in " ".join(rules) and "hook input" in " ".join(rules)
    head_ports = {
        int(p) for s in config["head_start_ray_commands"] for p in re.findall(r"--port[= ](\d+)", s)
    }
    assert head_ports and all(any(a <= p <= b for a, b in dropped) for p in head_ports)


def test_the_tailscale_head_names_its_s3_compatible_endpoint() -> None:
    """An on-prem S3 store is an S3-compatible server: `luma-ray up` names its endpoint."""
    from luma_ray.cli import build_parser
    from luma_ray.serving_cli.cluster import runtime_of

    config = load(TAILSCALE)
    [up] = [c for c in config["head_start_ray_commands"] if "luma-ray up" in c]
    argv = shlex.split(re.sub(r"\$\([^()]*\)", "100.64.0.1", up.split("luma-ray", 1)[1]))
    runtime = runtime_of(build_parser().parse_args(argv))
    assert runtime.store.startswith("s3://") and runtime.s3_endpoint_url, argv


@pytest.mark.parametrize("doc", ["cluster_configs/README.md", "docs/deploy.md"])
def test_the_docs_show_the_firewall_the_config_loads(doc: str) -> None:
    """The rules the docs show are the ones every on-prem node loads."""
    config = load(TAILSCALE)
    [command] = [c for c in config["setup_commands"] if re.search(r"\bnft\s+-f\b", c)]
    table = [
        r for r in nft_rules(command) if r and not r.startswith(("delete", "table inet luma_ray"))
    ]
    text = (CONFIG_DIR.parent / doc).read_text()
    blocks = re.findall(r"```\n(\s*table inet luma_ray \{.*?)```", text, re.S)
    assert blocks, f"{doc} shows no nftables table"
    for block in blocks:
        shown = [line.strip() for line in block.splitlines()][1:]
        assert [r for r in shown if r] == table, f"{doc}: {shown} != {table}"
