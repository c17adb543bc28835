"""Secrets in command lines: their values are replaced before a ProcessInfo is built.

Command lines are stored and shown whole, and services put passwords there
(`redis-server --requirepass X`, `java -Dx.keyStorePassword=X`, `postgres://u:X@db`).
A report goes to the team that fixes the findings; it must not hand them the fleet's
passwords. A redacted value keeps its argument's name and position and becomes
`<redacted:N>`, N its length in characters (how long it was is not the secret).

What is redacted, argument by argument (an argument holding spaces, such as the
script of `sh -c '...'` or a process title, is split on whitespace and read the same way):

- the value of an option whose NAME looks secret (`SECRET_NAME`): `--name=V`,
  `--name V` (the next argument, unless it starts with `-`), `-Dname=V`, and `name=V`
  inside an argument (`PASSWORD=V`, a query string's `&token=V`, libpq's
  `host=db password=V`, JDBC's `;password=V`), the latter up to `&`, `;` or the end;
- the password of a URL's userinfo (`scheme://user:V@host`), up to the `@`;
- an HTTP header given as one argument: `Authorization: V`, `Cookie: V`, `X-Token: V`;
- per program, short options that carry a password where that is unambiguous:
  `mysql -pV` (attached only: `-p V` makes V the database), `mongosh -p V`,
  `redis-cli -a V`, `sshpass -p V`, `ldapsearch -w V`, `mosquitto_pub -P V`, and
  `curl -u user:V` / `ntfy -u user:V` / `smbclient -U user%V` (the user stays), and in
  any program a bare `--auth user:V` (flower's `--auth` is a regex of e-mails, mongod's
  a flag);
- a URL query's bare `auth=V` (`?auth=V`, `&auth=V`: ntfy's credentials), though a bare
  `auth` elsewhere is not a secret's name.

What is not: the NAME of a file holding a secret is not a secret, so an option whose
name ends in file, path, dir, directory, location, name, env, var, fd, type, mode,
method, url, uri, ttl, timeout or length keeps its value (`--password-file
/run/secrets/db`, `--auth-mode md5`, `--token-ttl 1h`); nor does `--authorized-keys-file`
or `--authentication-database` (auth only counts at a name's end, after something:
`--masterauth`, `--basic-auth`). Key options (`--private-key`, `--api-key`...)
keep a value that is a path (`/`, `./`, `~/`), since programs take key FILES there;
password, secret and token values are redacted even when they look like paths.
Positional secrets (`rabbitmqctl add_user NAME PASS`) and secrets under innocent
names are not recognised: the policy's `redact_arguments` adds names (see `Redactor`).
A URL password containing a raw `/` (invalid in a URL) is not recognised as one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# A name is secret when this is found in it (case-insensitive). `pass` stands alone or
# ends a word (`requirepass`, `--pass`) but not `passive`, `bypass`, `passthrough`;
# `token` not `tokens`/`tokenizer` (`--max-tokens 512` is a count).
SECRET_NAME = re.compile(
    r"(?<!by)(?<!com)pass(?:word|wd|phrase|wort)?(?![a-z])"
    r"|passw|secret(?!ary)|token(?![a-z])|credential"
    r"|(?:^|[-_.])pwd$|(?<!^)auth$|auth[-_.]?key"
    r"|(?:private|access|api|signing|encryption|master|license)[-_.]?key",
    re.IGNORECASE)
# Key names whose value may be a key FILE: a path there is kept.
_KEY_NAME = re.compile(r"key(?:s)?$|credential", re.IGNORECASE)
# A name ending so names a place or a property of the secret, not the secret.
_NOT_A_VALUE = re.compile(
    r"[-_.]?(?:file|files|path|dir|directory|location|name|env|var|fd|type|mode|method"
    r"|url|uri|ttl|timeout|length|len)$"
    # boolean flags about a secret, not carrying one: --no-password, --ask-pass
    r"|^(?:no|without|skip|ask|prompt|disable|enable|allow)[-_]", re.IGNORECASE)
# An HTTP header given as one argument (curl -H 'Authorization: Bearer X').
_HEADER = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9-]*):[ \t]*(?P<value>\S.*)", re.DOTALL)
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

_OPTION = re.compile(r"(?P<dashes>--?)(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)"
                     r"(?:(?P<eq>=)(?P<value>.*))?", re.DOTALL)
_JAVA_PROPERTY = re.compile(r"-D(?P<name>[A-Za-z0-9_.\-]+)=(?P<value>.*)", re.DOTALL)
# name=value inside an argument, after its start or a separator (? & ; space...).
_PAIR = re.compile(r"(?:^|(?<=[?&;,=\s]))(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)="
                   r"(?P<value>[^&;\s]*)")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*:)"
                           r"(?P<value>[^\s/@]*)(?=@)")
_PATH = re.compile(r"(?:/|\./|\.\./|~/)")
# A bare --auth is a user:password pair in some programs (httpie) and something else in
# others (a regex of e-mails in flower, a flag in mongod): only the part after `:` goes.
_PAIR_OPTIONS = {"auth": "pair::"}


def _each(programs: tuple[str, ...], options: dict[str, str]) -> dict[str, dict[str, str]]:
    return {program: dict(options) for program in programs}


# Programs whose short option carries a password: letter -> how.
# "attached": only -pVALUE (mysql's -p VALUE means: prompt, and VALUE is the database);
# "next": -p VALUE or -pVALUE; "pair:SEP": user SEP password, the user kept.
_PROGRAM_OPTIONS: dict[str, dict[str, str]] = {
    **_each(("mysql", "mysqld", "mysqladmin", "mysqldump", "mysqlimport", "mysqlcheck",
             "mysqlshow", "mysqlbinlog", "mysqlpump", "mysqlsh", "mariadb", "mariadb-admin",
             "mariadb-dump", "mariadb-import", "mariadb-check", "mariadb-show",
             "mariadb-binlog"), {"p": "attached"}),
    **_each(("mongo", "mongosh", "mongodump", "mongorestore", "mongoexport", "mongoimport",
             "mongostat", "mongotop", "mongofiles"), {"p": "next"}),
    "redis-cli": {"a": "next"},
    "rabbitmqadmin": {"p": "next"},
    "sshpass": {"p": "next"},
    **_each(("ldapsearch", "ldapadd", "ldapmodify", "ldapdelete", "ldapwhoami",
             "ldappasswd", "ldapcompare", "ldapmodrdn"), {"w": "next"}),
    **_each(("mosquitto_pub", "mosquitto_sub", "mosquitto_rr"), {"P": "next"}),
    "curl": {"u": "pair::", "U": "pair::", "user": "pair::", "proxy-user": "pair::"},
    "ntfy": {"u": "pair::", "user": "pair::"},
    "smbclient": {"U": "pair:%", "user": "pair:%"},
}


def marker(value: str) -> str:
    """What a redacted value becomes: its length, never its content."""
    return f"<redacted:{len(value)}>"


@dataclass(frozen=True)
class Redactor:
    """Redacts argv; `extra` are the policy's `redact_arguments`: regexes searched
    (case-insensitive) in option and parameter names, taken as given (no file-name
    exemption: whoever writes one means it)."""

    extra: tuple[re.Pattern[str], ...] = ()

    def secret(self, name: str) -> bool:
        if any(p.search(name) for p in self.extra):
            return True
        return bool(SECRET_NAME.search(name)) and not _NOT_A_VALUE.search(name)

    def keeps(self, name: str, value: str) -> bool:
        """A key option's value that is a path names a key file: kept."""
        if any(p.search(name) for p in self.extra):
            return False
        return bool(_KEY_NAME.search(name)) and not SECRET_NAME.search(
            _KEY_NAME.sub("", name)) and bool(_PATH.match(value))

    def argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` with every secret value replaced by `marker(value)`."""
        out: list[str] = []
        program: dict[str, str] = {}
        pending: str | None = None  # how the next argument is a secret, if it is one
        for arg in argv:
            if pending is not None and arg and not arg.startswith("-"):
                out.append(self._pending(pending, arg))
                pending = None
                continue
            pending = None
            header = _HEADER.fullmatch(arg)
            if header is not None and (header["name"].lower() in _SECRET_HEADERS
                                       or self.secret(header["name"])):
                out.append(f"{header['name']}: {marker(header['value'])}")
                continue
            if any(c.isspace() for c in arg):
                out.append(self._words(arg))
                continue
            known = _PROGRAM_OPTIONS.get(arg.rsplit("/", 1)[-1])
            if known is not None:
                program = known
                out.append(arg)
                continue
            text, pending = self._one(arg, program)
            out.append(text)
        return out

    def _pending(self, how: str, arg: str) -> str:
        if how.startswith("pair:"):
            return _pair(arg, how[5:])
        if how.startswith("name:") and self.keeps(how[5:], arg):
            return arg
        return marker(arg)

    def _words(self, arg: str) -> str:
        parts = re.split(r"(\s+)", arg)
        words = self.argv(parts[0::2])
        parts[0::2] = words
        return "".join(parts)

    def _one(self, arg: str, program: dict[str, str]) -> tuple[str, str | None]:
        """One argument redacted, and how the next one is a secret (or None)."""
        short = _short(arg, program)
        if short is not None:
            return short
        prop = _JAVA_PROPERTY.fullmatch(arg)
        if prop is not None and self.secret(prop["name"]):
            if self.keeps(prop["name"], prop["value"]):
                return arg, None
            return f"-D{prop['name']}={marker(prop['value'])}", None
        option = _OPTION.fullmatch(arg)
        if option is not None and prop is None:
            name = option["name"]
            how = program.get(name) or _PAIR_OPTIONS.get(name.lower())
            if how is not None and how.startswith("pair:") and option["dashes"] == "--":
                if option["eq"]:
                    return f"--{name}={_pair(option['value'], how[5:])}", None
                return arg, how
            if self.secret(name):
                if not option["eq"]:
                    return arg, f"name:{name}"
                value = option["value"]
                if self.keeps(name, value):
                    return arg, None
                return f"{option['dashes']}{name}={marker(value)}", None
        return self._inline(arg), None

    def _inline(self, arg: str) -> str:
        """URL passwords and secret `name=value` pairs inside one argument."""
        text = _URL_PASSWORD.sub(lambda m: m["head"] + marker(m["value"]), arg)

        def secret(m: re.Match[str]) -> bool:
            if self.secret(m["name"]):
                return not self.keeps(m["name"], m["value"])
            # A query's bare ?auth= carries credentials (ntfy's); elsewhere it is a flag.
            return m["name"].lower() == "auth" and text[max(0, m.start() - 1)] in "?&"

        return _PAIR.sub(lambda m: (f"{m['name']}={marker(m['value'])}"
                                    if m["value"] and secret(m) else m[0]), text)


def _short(arg: str, program: dict[str, str]) -> tuple[str, str | None] | None:
    """A program's password-carrying short option (`-pX`, `-p X`, `-u user:X`)."""
    if len(arg) < 2 or arg[0] != "-" or arg[1] == "-" or arg[1] not in program:
        return None
    letter, rest = arg[1], arg[2:]
    how = program[letter]
    if how == "attached":
        return (f"-{letter}{marker(rest)}" if rest else arg), None
    if how == "next":
        return (f"-{letter}{marker(rest)}", None) if rest else (arg, "secret")
    if rest:
        return f"-{letter}{_pair(rest, how[5:])}", None
    return arg, how


def _pair(value: str, sep: str) -> str:
    """`user SEP password` -> the user kept, the password redacted; no SEP: a user alone."""
    user, found, password = value.partition(sep)
    return f"{user}{sep}{marker(password)}" if found and password else value


@functools.lru_cache(maxsize=32)
def redactor(extra: tuple[str, ...] = ()) -> Redactor:
    """The Redactor for the policy's extra name patterns (compiled once per set)."""
    return Redactor(extra=tuple(re.compile(p, re.IGNORECASE) for p in extra))


def redact_argv(argv: Sequence[str], extra: Iterable[str] = ()) -> list[str]:
    """`argv` with secret values replaced; `extra`: more name regexes (the policy's)."""
    return redactor(tuple(extra)).argv(argv)
