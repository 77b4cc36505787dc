"""Reading a Java ``sasl.jaas.config`` line, so snippets from providers' Java pages work as-is.

The grammar is JAAS's: ``<LoginModule class> <flag> [name=value ...];`` where a
value is a double-quoted string (backslash escapes a character) or a bare word.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kprod.errors import ConfigError

__all__ = ["JaasConfig", "parse_jaas", "MODULE_MECHANISMS"]

_FLAGS = ("required", "requisite", "sufficient", "optional")

#: Kafka's login modules (short class name) and the mechanisms each serves.
MODULE_MECHANISMS: dict[str, tuple[str, ...]] = {
    "PlainLoginModule": ("PLAIN",),
    "ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512"),
    "OAuthBearerLoginModule": ("OAUTHBEARER",),
}


@dataclass(frozen=True)
class JaasConfig:
    """One login module entry: its class, flag and options."""

    module: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def short_module(self) -> str:
        """The class name without its package ("PlainLoginModule")."""
        return self.module.rsplit(".", 1)[-1]

    def __repr__(self) -> str:  # options hold passwords: never shown
        return f"JaasConfig({self.module!r}, {self.flag!r}, options={sorted(self.options)})"


def _error(reason: str) -> ConfigError:
    return ConfigError(
        f"sasl.jaas.config is not a valid JAAS line: {reason}. Expected"
        ' \'<LoginModule class> required name="value" ...;\', e.g.'
        ' \'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";\'.',
        keys=("sasl.jaas.config",),
    )


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) tokens: word, string, '=', ';'."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "=;":
            out.append((ch, ch))
            i += 1
        elif ch == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise _error("a quoted value is not closed")
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                elif ch == '"':
                    i += 1
                    break
                else:
                    chars.append(ch)
                    i += 1
            out.append(("string", "".join(chars)))
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '=;"':
                i += 1
            out.append(("word", text[start:i]))
    return out


def parse_jaas(text: str) -> JaasConfig:
    """Parse one JAAS entry; ``ConfigError`` (never echoing values) when it does not fit."""
    tokens = _tokens(text)
    if len(tokens) < 2 or tokens[0][0] != "word" or tokens[1][0] != "word":
        raise _error("it must start with a login module class and a flag")
    module, flag = tokens[0][1], tokens[1][1]
    if flag.lower() not in _FLAGS:
        raise _error(f"the flag after the class must be one of {', '.join(_FLAGS)}")
    options: dict[str, str] = {}
    i = 2
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == ";":
            if any(t[0] != ";" for t in tokens[i + 1:]):
                raise _error("kprod takes one login module entry; text follows the ';'")
            return JaasConfig(module, flag.lower(), options)
        if kind != "word" or i + 2 >= len(tokens) or tokens[i + 1][0] != "=":
            raise _error(f"expected name=value after option {len(options) + 1}")
        if tokens[i + 2][0] not in ("word", "string"):
            raise _error(f"option {value!r} has no value")
        options[value] = tokens[i + 2][1]
        i += 3
    raise _error("it must end with ';'")
