"""Package-owner parsers on real dpkg -S / rpm -qf output (tests/fixtures/{dpkg,rpm}/).

Every paths list below is the argument list capture_internal.sh gave the command.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ParseError
from fleetaudit.models import PackageLookup, PackageOwner
from fleetaudit.parsers.packages import (
    parse_dpkg_lists,
    parse_dpkg_versions,
    parse_rpm_qf,
    usrmerge_aliases,
)
from tests.unit.dpkg_search import dpkg_pattern, parse_dpkg_search, resolve_usrmerge

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURE_DIR = "/tmp/fleetaudit-capture"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8", errors="replace")


def owners(lookups: list[PackageLookup]) -> list[tuple[str, str | None, str | None]]:
    """(path, manager, owner name): None manager = unknown, None name = not owned."""
    return [(x.path, x.manager, x.owner.name if x.owner else None) for x in lookups]


# --- dpkg -S -----------------------------------------------------------------


def test_dpkg_owned() -> None:
    paths = ["/usr/bin/python3.11", "/usr/sbin/sshd"]
    lookups = parse_dpkg_search(fixture("dpkg/owned.txt"), paths)
    assert lookups == [
        PackageLookup(path="/usr/bin/python3.11", manager="dpkg",
                      owner=PackageOwner(manager="dpkg", name="python3.11-minimal")),
        PackageLookup(path="/usr/sbin/sshd", manager="dpkg",
                      owner=PackageOwner(manager="dpkg", name="openssh-server")),
    ]


def test_dpkg_not_owned() -> None:
    paths = [f"{CAPTURE_DIR}/my server", "/usr/local/bin/fleetaudit-not-installed"]
    assert owners(parse_dpkg_search(fixture("dpkg/not_owned.txt"), paths)) == [
        (paths[0], "dpkg", None),
        (paths[1], "dpkg", None),
    ]


def test_dpkg_usrmerge_only_one_spelling_is_known() -> None:
    paths = ["/usr/bin/busybox", "/bin/busybox", "/usr/bin/ls", "/bin/ls"]
    assert owners(parse_dpkg_search(fixture("dpkg/usrmerge.txt"), paths)) == [
        ("/usr/bin/busybox", "dpkg", None),
        ("/bin/busybox", "dpkg", "busybox"),
        ("/usr/bin/ls", "dpkg", None),
        ("/bin/ls", "dpkg", "coreutils"),
    ]


def test_dpkg_arch_qualifier_is_dropped() -> None:
    paths = ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"]
    text = fixture("dpkg/arch_qualified.txt")
    assert "libc6:amd64: " in text
    assert owners(parse_dpkg_search(text, paths))[1] == (paths[1], "dpkg", "libc6")


def test_dpkg_several_owners_are_joined() -> None:
    lookups = parse_dpkg_search(fixture("dpkg/multi_owner.txt"), ["/etc/ssh", "/usr/bin/pg_config"])
    assert owners(lookups)[0] == ("/etc/ssh", "dpkg", "openssh-server, openssh-client")


def test_dpkg_diversions() -> None:
    paths = ["/bin/sh", "/bin/sh.distrib", "/usr/bin/pg_config", "/usr/bin/pg_config.libpq-dev"]
    assert owners(parse_dpkg_search(fixture("dpkg/diverted.txt"), paths)) == [
        ("/bin/sh", "dpkg", "dash"),  # dash diverts others' /bin/sh and keeps its own
        ("/bin/sh.distrib", "dpkg", None),  # only the diverter lists /bin/sh: nothing there
        # Both list pg_config, but libpq-dev's copy was diverted away from it...
        ("/usr/bin/pg_config", "dpkg", "postgresql-common"),
        # ...to here, where dpkg prints no owner line at all.
        ("/usr/bin/pg_config.libpq-dev", "dpkg", "libpq-dev"),
    ]


def test_dpkg_diverted_to_path_alone_is_unknown() -> None:
    text = fixture("dpkg/diverted.txt")
    alone = "\n".join(line for line in text.splitlines() if "pg_config" in line
                      and not line.startswith("postgresql-common, libpq-dev: "))
    [lookup] = parse_dpkg_search(alone, ["/usr/bin/pg_config.libpq-dev"])
    assert (lookup.manager, lookup.owner) == (None, None)


def test_dpkg_local_diversion_and_missing_list_file() -> None:
    text = fixture("dpkg/local_diversion_missing_list.txt")
    assert text.startswith("dpkg-query: warning: files list file for package 'busybox' missing")
    paths = ["/usr/sbin/sshd", "/usr/sbin/sshd.distrib", "/bin/busybox"]
    assert owners(parse_dpkg_search(text, paths)) == [
        ("/usr/sbin/sshd", "dpkg", None),  # an admin's diversion: dpkg no longer vouches
        ("/usr/sbin/sshd.distrib", "dpkg", "openssh-server"),  # where the package copy goes
        ("/bin/busybox", None, None),  # "no path found" from a damaged database: unknown
    ]


def test_dpkg_glob_answer_for_another_path_is_not_taken() -> None:
    text = fixture("dpkg/glob_pattern.txt")
    assert dpkg_pattern("/usr/sbin/ssh?") == "/usr/sbin/ssh\\?"
    unescaped, escaped = text.splitlines()
    assert unescaped == "openssh-server: /usr/sbin/sshd"  # '?' matched sshd
    [lookup] = parse_dpkg_search(unescaped, ["/usr/sbin/ssh?"])
    assert (lookup.manager, lookup.owner) == (None, None)
    [lookup] = parse_dpkg_search(escaped, ["/usr/sbin/ssh?"])
    assert (lookup.manager, lookup.owner) == ("dpkg", None)


def test_dpkg_pattern_escapes_every_glob_character() -> None:
    assert dpkg_pattern("/a*b?c[d]e\\f") == "/a\\*b\\?c\\[d]e\\\\f"
    assert dpkg_pattern("/usr/sbin/sshd") == "/usr/sbin/sshd"


def test_dpkg_batch_resolved_across_usrmerge() -> None:
    """The collector's view: exe paths from /proc, each queried with its other spelling."""
    queried = ["/usr/bin/python3.11", "/bin/python3.11", f"{CAPTURE_DIR}/my server",
               f"{CAPTURE_DIR}/deleted-server", "/usr/bin/busybox", "/bin/busybox",
               "/usr/sbin/sshd", "/sbin/sshd"]
    lookups = parse_dpkg_search(fixture("dpkg/batch.txt"), queried)
    assert [x.path for x in lookups] == queried
    resolved = {exe: resolve_usrmerge(lookups, exe) for exe in [
        "/usr/bin/python3.11", f"{CAPTURE_DIR}/my server", f"{CAPTURE_DIR}/deleted-server",
        "/usr/bin/busybox", "/usr/sbin/sshd"]}
    assert owners(list(resolved.values())) == [
        ("/usr/bin/python3.11", "dpkg", "python3.11-minimal"),
        (f"{CAPTURE_DIR}/my server", "dpkg", None),
        (f"{CAPTURE_DIR}/deleted-server", "dpkg", None),
        ("/usr/bin/busybox", "dpkg", "busybox"),  # /proc says /usr/bin, dpkg knows /bin
        ("/usr/sbin/sshd", "dpkg", "openssh-server"),
    ]


def test_resolve_usrmerge_unknown_unless_every_spelling_answered() -> None:
    lookups = parse_dpkg_search(fixture("dpkg/usrmerge.txt"), ["/usr/bin/busybox"])
    assert resolve_usrmerge(lookups, "/usr/bin/busybox") == PackageLookup(
        path="/usr/bin/busybox", manager=None, owner=None)  # /bin/busybox never asked
    assert resolve_usrmerge([], "/usr/local/bin/x") == PackageLookup(
        path="/usr/local/bin/x", manager=None, owner=None)


@pytest.mark.parametrize(
    ("path", "aliases"),
    [
        ("/usr/bin/ls", ["/usr/bin/ls", "/bin/ls"]),
        ("/bin/ls", ["/bin/ls", "/usr/bin/ls"]),
        ("/usr/sbin/sshd", ["/usr/sbin/sshd", "/sbin/sshd"]),
        ("/sbin/sshd", ["/sbin/sshd", "/usr/sbin/sshd"]),
        ("/lib/x86_64-linux-gnu/libc.so.6", ["/lib/x86_64-linux-gnu/libc.so.6",
                                             "/usr/lib/x86_64-linux-gnu/libc.so.6"]),
        ("/usr/lib64/ld-linux-x86-64.so.2", ["/usr/lib64/ld-linux-x86-64.so.2",
                                             "/lib64/ld-linux-x86-64.so.2"]),
        ("/usr/libexec/x", ["/usr/libexec/x"]),
        ("/usr/local/bin/x", ["/usr/local/bin/x"]),
        ("/binary", ["/binary"]),
        ("/tmp/bin/x", ["/tmp/bin/x"]),
    ],
)
def test_usrmerge_aliases(path: str, aliases: list[str]) -> None:
    assert usrmerge_aliases(path) == aliases


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        "dpkg-query: error: --search needs at least one file name pattern argument",
        "Coreutils: /bin/ls",
        "coreutils /bin/ls",
        "diversion by dash to: /bin/sh.distrib",  # a 'to' with no 'from'
    ],
)
def test_dpkg_garbage_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_dpkg_search(text, ["/bin/ls"])


def test_dpkg_unanswered_path_is_unknown() -> None:
    [lookup] = parse_dpkg_search(fixture("dpkg/owned.txt"), ["/usr/bin/ls"])
    assert (lookup.manager, lookup.owner) == (None, None)


# --- dpkg file lists (what collection asks) -------------------------------------


LIST_PATHS = fixture("dpkg/lists_paths.txt").splitlines()


def test_file_lists_answer_as_dpkg_s_does_for_every_path() -> None:
    # The same paths, at the same moment, both ways: both usrmerge spellings, this host's
    # diversions from both ends, unowned paths, a path with a space.
    by_lists = parse_dpkg_lists(fixture("dpkg/lists_probe.txt"), LIST_PATHS)
    assert by_lists == parse_dpkg_search(fixture("dpkg/lists_dpkg_S.txt"), LIST_PATHS)
    answers = dict((path, name) for path, _, name in owners(by_lists))
    assert answers["/usr/sbin/sshd"] == "openssh-server"
    assert answers["/bin/busybox"] == "busybox" and answers["/usr/bin/busybox"] is None
    assert answers["/bin/sh"] == "dash"  # diverted from; dash ships its own copy
    assert answers["/bin/sh.distrib"] is None  # diverted to; no other package has /bin/sh
    assert answers["/usr/bin/pg_config"] == "postgresql-common"  # libpq-dev's went ...
    assert answers["/usr/bin/pg_config.libpq-dev"] == "libpq-dev"  # ... here
    assert answers["/tmp/my server"] is None
    assert all(manager == "dpkg" for _, manager, _ in owners(by_lists))


def test_file_list_nobody_may_read_makes_no_owner_unknown() -> None:
    found = parse_dpkg_lists(fixture("dpkg/lists_unreadable_nobody.txt"),
                             ["/usr/sbin/sshd", "/bin/busybox"])
    assert "grep: openssh-server.list: Permission denied" in fixture(
        "dpkg/lists_unreadable_nobody.txt")
    assert owners(found) == [("/usr/sbin/sshd", None, None),
                             ("/bin/busybox", "dpkg", "busybox")]


def test_no_dpkg_database_is_unknown_not_unowned() -> None:
    assert owners(parse_dpkg_lists(fixture("dpkg/lists_no_database.txt"),
                                   ["/usr/sbin/sshd"])) == [("/usr/sbin/sshd", None, None)]


def test_file_list_output_cut_before_the_diversions_is_an_error() -> None:
    text = fixture("dpkg/lists_probe.txt")
    with pytest.raises(ParseError, match="diversions"):
        parse_dpkg_lists(text[:text.index("@@fa-diversions")], LIST_PATHS)


@pytest.mark.parametrize("text", ["openssh-server: /usr/sbin/sshd",
                                  "/usr/sbin/sshd", "Openssh.list:/usr/sbin/sshd"])
def test_file_list_garbage_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_dpkg_lists(text + "\n@@fa-diversions\n", ["/usr/sbin/sshd"])


def test_dpkg_versions_leave_out_what_is_not_installed() -> None:
    text = fixture("dpkg/versions.txt")
    assert "no packages found matching fleetaudit-not-installed" in text
    assert parse_dpkg_versions(text) == {
        "openssh-server": "1:9.2p1-2+deb12u10", "python3.11-minimal": "3.11.2-6+deb12u6",
        "libc6": "2.36-9+deb12u14", "busybox": "1:1.35.0-4+deb12u1+b1"}


@pytest.mark.parametrize("text", ["openssh-server 1:9.2p1", "openssh-server\t", "\t1.0",
                                  "dpkg-query: error: bad format"])
def test_dpkg_versions_garbage_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_dpkg_versions(text)


# --- rpm -qf -----------------------------------------------------------------


def test_rpm_owned_and_not_owned() -> None:
    paths = ["/usr/bin/fleetaudit-demo", "/opt", "/usr/bin/fleetaudit-demo-extra"]
    lookups = parse_rpm_qf(fixture("rpm/owned.txt"), paths)
    assert lookups == [
        PackageLookup(path=paths[0], manager="rpm",
                      owner=PackageOwner(manager="rpm", name="fleetaudit-demo", version="1.0-1")),
        PackageLookup(path="/opt", manager="rpm", owner=None),
        PackageLookup(path=paths[2], manager="rpm",
                      owner=PackageOwner(manager="rpm", name="fleetaudit-demo-extra",
                                         version="1.0-1")),
    ]


def test_rpm_empty_database_owns_nothing() -> None:
    lookups = parse_rpm_qf(fixture("rpm/not_owned.txt"), ["/usr/bin/ls", "/usr/sbin/sshd"])
    assert owners(lookups) == [("/usr/bin/ls", "rpm", None), ("/usr/sbin/sshd", "rpm", None)]


def test_rpm_without_any_database_says_not_owned_too() -> None:
    # rpm --dbpath pointing nowhere prints no error: indistinguishable from an empty db.
    assert owners(parse_rpm_qf(fixture("rpm/no_database.txt"), ["/usr/bin/ls"])) == [
        ("/usr/bin/ls", "rpm", None)]


def test_rpm_missing_file_is_unknown() -> None:
    paths = ["/usr/bin/ls", "/nonexistent/fleetaudit"]
    lookups = parse_rpm_qf(fixture("rpm/nonexistent.txt"), paths)
    assert owners(lookups) == [("/usr/bin/ls", "rpm", None), (paths[1], None, None)]


def test_rpm_owned_but_deleted_still_answers() -> None:
    [lookup] = parse_rpm_qf(fixture("rpm/owned_but_deleted.txt"), ["/usr/bin/fleetaudit-demo"])
    assert lookup.owner == PackageOwner(manager="rpm", name="fleetaudit-demo", version="1.0-1")


def test_rpm_several_owners_of_one_path() -> None:
    [lookup] = parse_rpm_qf(fixture("rpm/multi_owner_single_path.txt"), ["/opt/fleetaudit-shared"])
    assert lookup.owner == PackageOwner(
        manager="rpm", name="fleetaudit-demo-extra, fleetaudit-demo", version="1.0-1")


def test_rpm_several_owners_in_a_batch_are_ambiguous() -> None:
    paths = ["/usr/bin/fleetaudit-demo", "/opt/fleetaudit-shared", "/usr/bin/fleetaudit-demo-extra"]
    text = fixture("rpm/multi_owner_batch.txt")
    assert len(text.splitlines()) == 4  # four package lines, three paths: which is whose?
    with pytest.raises(ParseError, match="ambiguous"):
        parse_rpm_qf(text, paths)


@pytest.mark.parametrize(
    ("text", "paths"),
    [
        ("hello world again", ["/usr/bin/ls"]),
        ("error: cannot open Packages index", ["/usr/bin/ls"]),
        ("file /etc/passwd is not owned by any package", ["/usr/bin/ls"]),  # not asked
        (fixture("rpm/not_owned.txt"), ["/usr/sbin/sshd", "/usr/bin/ls"]),  # out of order
        (fixture("rpm/owned.txt"), ["/usr/bin/fleetaudit-demo", "/opt"]),  # a line too many
    ],
)
def test_rpm_garbage_raises_parse_error(text: str, paths: list[str]) -> None:
    with pytest.raises(ParseError):
        parse_rpm_qf(text, paths)


def test_rpm_truncated_output_leaves_the_rest_unknown() -> None:
    paths = ["/usr/bin/fleetaudit-demo", "/opt", "/usr/bin/fleetaudit-demo-extra"]
    first_two = "\n".join(fixture("rpm/owned.txt").splitlines()[:2])
    assert owners(parse_rpm_qf(first_two, paths)) == [
        (paths[0], "rpm", "fleetaudit-demo"), ("/opt", "rpm", None), (paths[2], None, None)]


# --- never anything but a list or ParseError ------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(), st.lists(st.text(min_size=1).map(lambda s: "/" + s), max_size=4))
def test_arbitrary_text_is_lookups_or_parse_error(text: str, paths: list[str]) -> None:
    for parse in (parse_dpkg_search, parse_rpm_qf):
        try:
            lookups = parse(text, paths)
        except ParseError:
            continue
        assert [x.path for x in lookups] == paths
