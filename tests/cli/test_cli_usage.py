"""``kprod`` without a broker: help, version, and every kind of bad input.

Each bad input must end the process with a non-zero status and exactly one
``error:`` line naming what is wrong, never a traceback; none of these start
an embedded cluster (settings are checked first).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_kprod

from kprod import __version__

PERF = ["perf", "--topic", "t", "--num-records", "10", "--record-size", "10"]
PRODUCE = ["produce", "--topic", "t"]


def test_version() -> None:
    run = run_kprod("--version")
    assert run.status == 0, str(run)
    assert run.out.startswith(f"kprod {__version__} (Python ")


def test_top_level_help_lists_every_command() -> None:
    run = run_kprod("--help")
    assert run.status == 0, str(run)
    for command in ("produce", "perf", "cluster"):
        assert f"\n  {command} " in run.out


def test_no_command_prints_usage_and_fails() -> None:
    run = run_kprod()
    assert run.status == 2
    assert run.err.startswith("usage: kprod")


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("perf", ["--num-records", "--record-size", "--throughput", "--payload-file", "--producer-prop", "--json"]),
        ("produce", ["--property", "--producer-prop", "--producer.config", "--sync", "--file", "--bootstrap-server"]),
        ("cluster", ["--brokers", "--port"]),
    ],
)
def test_command_help(command: str, options: list[str]) -> None:
    run = run_kprod(command, "--help")
    assert run.status == 0, str(run)
    assert run.out.startswith(f"usage: kprod {command}")
    for option in options:
        assert option in run.out


def test_unknown_command_suggests_the_closest() -> None:
    run = run_kprod("perff")
    assert run.status == 2
    assert run.err.strip() == (
        "kprod: error: unknown command 'perff'; did you mean 'perf'? (commands: produce, perf, cluster; see 'kprod --help')"
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([*PERF, "--thruput", "5"], "unknown option '--thruput'; did you mean '--throughput'?"),
        ([*PRODUCE, "--sink"], "unknown option '--sink'; did you mean '--sync'?"),
        ([*PERF, "stray"], "unexpected argument 'stray'"),
        (["cluster", "--brokerz", "3"], "unrecognized arguments: --brokerz 3"),
    ],
)
def test_unknown_option(args: list[str], fragment: str) -> None:
    assert_one_line_error(run_kprod(*args), 2, fragment)


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--num-records", "0", "argument --num-records: must be a positive whole number, not '0'"),
        ("--num-records", "-5", "argument --num-records: must be a positive whole number"),
        ("--num-records", "ten", "argument --num-records: must be a positive whole number, not 'ten'"),
        ("--num-records", "1.5", "argument --num-records: must be a positive whole number, not '1.5'"),
        ("--record-size", "0", "argument --record-size: must be a positive whole number, not '0'"),
        ("--throughput", "0", "argument --throughput: must be a number of records per second above 0, or -1"),
        ("--throughput", "fast", "argument --throughput: must be a number of records per second above 0"),
        ("--throughput", "nan", "argument --throughput: must be a number of records per second above 0"),
    ],
)
def test_bad_numbers(option: str, value: str, fragment: str) -> None:
    values = {"--num-records": "10", "--record-size": "10", option: value}
    args = ["perf", "--topic", "t", *(word for pair in values.items() for word in pair)]
    assert_one_line_error(run_kprod(*args), 2, fragment)


def test_large_numbers_are_accepted_in_scientific_form() -> None:
    # 1e1 is a whole number: accepted (and then it fails only on the unreachable server)
    run = run_kprod(
        "perf", "--topic", "t", "--num-records", "1e1", "--record-size", "10",
        "--bootstrap-server", f"127.0.0.1:{_closed_port()}", "--producer-prop", "max.block.ms=200",
    )
    assert_one_line_error(run, 1, "not present in metadata after 200 ms")


def test_perf_needs_a_payload() -> None:
    run = run_kprod("perf", "--topic", "t", "--num-records", "10")
    assert_one_line_error(run, 2, "one of the arguments --record-size --payload-file is required")


def test_perf_record_size_and_payload_file_exclude_each_other(tmp_path: Path) -> None:
    payloads = tmp_path / "payloads.txt"
    payloads.write_text("a\nb\n")
    run = run_kprod(*PERF, "--payload-file", str(payloads))
    assert_one_line_error(run, 2, "argument --payload-file: not allowed with argument --record-size")


@pytest.mark.parametrize("command", [PERF, PRODUCE])
def test_unknown_producer_property_names_the_closest_key(command: list[str]) -> None:
    run = run_kprod(*command, "--producer-prop", "lingr.ms=5")
    assert_one_line_error(run, 2, "'lingr.ms' is not a Kafka producer configuration key. Did you mean 'linger.ms'?")
    assert "Started an embedded" not in run.err


@pytest.mark.parametrize(
    ("prop", "fragment"),
    [
        ("acks=7", "acks='7' is not valid"),
        ("linger.ms=soon", "linger.ms='soon' is not valid: expected an integer"),
        ("=5", "argument --producer-prop: expected KEY=VALUE, got '=5'"),
        ("linger.ms", "argument --producer-prop: expected KEY=VALUE, got 'linger.ms'"),
    ],
)
def test_bad_producer_property(prop: str, fragment: str) -> None:
    assert_one_line_error(run_kprod(*PERF, "--producer-prop", prop), 2, fragment)


def test_producer_config_file_is_read_and_checked(tmp_path: Path) -> None:
    config = tmp_path / "producer.properties"
    config.write_text("# a comment\nlinger.ms = 5\nbatch.sise: 100\n")
    assert_one_line_error(run_kprod(*PERF, "--producer.config", str(config)), 2, "Did you mean 'batch.size'?")


def test_missing_producer_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.properties"
    assert_one_line_error(
        run_kprod(*PRODUCE, "--producer.config", str(missing)), 2, f"--producer.config: no such file: {missing}"
    )


def test_missing_payload_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    run = run_kprod("perf", "--topic", "t", "--num-records", "10", "--payload-file", str(missing))
    assert_one_line_error(run, 2, f"--payload-file: no such file: {missing}")


def test_empty_payload_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    run = run_kprod("perf", "--topic", "t", "--num-records", "10", "--payload-file", str(empty))
    assert_one_line_error(run, 2, "holds no payloads")


def test_missing_input_file(tmp_path: Path) -> None:
    missing = tmp_path / "lines.txt"
    assert_one_line_error(run_kprod(*PRODUCE, "--file", str(missing)), 2, f"--file: no such file: {missing}")


@pytest.mark.parametrize(
    ("properties", "fragment"),
    [
        (["parse.kye=true"], "unknown --property 'parse.kye'; did you mean 'parse.key'?"),
        (["parse.key=yes"], "--property parse.key='yes': give true or false"),
        (["key.separator="], "--property key.separator must not be empty"),
        (["headers.separator=:"], "--property headers.separator and headers.key.separator may not be equal (':')"),
        (["null.marker=\t"], "--property null.marker and key.separator may not be equal"),
        (["novalue"], "argument --property: expected KEY=VALUE, got 'novalue'"),
    ],
)
def test_bad_line_property(properties: list[str], fragment: str) -> None:
    args = [*PRODUCE]
    for prop in properties:
        args += ["--property", prop]
    assert_one_line_error(run_kprod(*args), 2, fragment)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [PERF, PRODUCE])
def test_unreachable_bootstrap_server_fails_after_max_block_ms(command: list[str]) -> None:
    port = _closed_port()
    run = run_kprod(
        *command, "--bootstrap-server", f"127.0.0.1:{port}", "--producer-prop", "max.block.ms=1000", stdin=b"x\n"
    )
    assert_one_line_error(
        run, 1, "Topic t not present in metadata after 1000 ms (max.block.ms).", "No broker answered"
    )
    assert run.out == ""


def test_bad_bootstrap_server_is_a_usage_error() -> None:
    run = run_kprod(*PERF, "--bootstrap-server", "no-port-here")
    assert_one_line_error(run, 2, "bootstrap.servers='no-port-here' is not valid")


@pytest.mark.parametrize("flag", ["--producer.config", "--command-config"])
def test_security_settings_file_errors_never_print_secrets(tmp_path: Path, flag: str) -> None:
    config = tmp_path / "client.properties"
    config.write_text(
        "bootstrap.servers=127.0.0.1:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required"
        ' username="u" password="TOPSECRET-1"\n'  # no ';': a bad JAAS line
        "ssl.truststore.password=TOPSECRET-2\n"
    )
    run = run_kprod(*PRODUCE, flag, str(config))
    assert_one_line_error(run, 2, "sasl.jaas.config is not a valid JAAS line")
    assert "TOPSECRET" not in run.out + run.err


def test_command_property_sets_security_keys(tmp_path: Path) -> None:
    run = run_kprod(*PERF, "--bootstrap-server", "127.0.0.1:1", "--command-property",
                    "security.protocol=SASL_PLAINTEXT", "sasl.mechanism=SCRAM-SHA-512", "sasl.password=TOPSECRET")
    assert_one_line_error(run, 2, "sasl.mechanism=SCRAM-SHA-512 needs a user name and password")
    assert "TOPSECRET" not in run.out + run.err
