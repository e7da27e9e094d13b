"""Recipients and webhook URLs (issue 15): one valid address, only http(s) to the rule's
hosts, checked at rule load, by ``check`` and again at send."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from funnel_notifier.channels import Delivery
from funnel_notifier.channels.mail import INVALID_RECIPIENT, TemplateProblem, one_recipient
from funnel_notifier.channels.webhook import WebhookChannel
from funnel_notifier.domain.rules import RuleFileError, parse_rule_file, webhook_url_problem
from funnel_notifier.main import check

from tests.support.notifier_support import new_secret, write_rules


@pytest.mark.parametrize(
    "rendered",
    [
        "a@x.example, b@y.example, c@z.example",
        "a@x.example;b@y.example",
        '"Doe, Jane" <jane@x.example>',
        "Jane <jane@x.example>",
        "jane@x.example\r\nBcc: all@x.example",
        "jane@x.example\n",
        "jane",
        "",
        "jane@localhost",
        "@x.example",
    ],
)
def test_anything_but_one_valid_address_is_an_invalid_recipient(rendered: str) -> None:
    with pytest.raises(TemplateProblem) as refused:
        one_recipient(rendered)
    assert str(refused.value).startswith(INVALID_RECIPIENT)


@pytest.mark.parametrize("address", ["zoe@example.com", "zoë@exämple.com", "a+tag@shop.example"])
def test_one_valid_address_passes(address: str) -> None:
    assert "@" in one_recipient(address)


@pytest.mark.parametrize(
    ("url", "hosts", "problem"),
    [
        ("ftp://crm.example/x", set(), "only http and https"),
        ("file:///etc/passwd", set(), "only http and https"),
        ("javascript:alert(1)", set(), "only http and https"),
        ("https:///path", set(), "no host"),
        ("https://user:pw@crm.example/", set(), "credentials"),
        ("https://crm.example:99999/", set(), "does not parse"),
        ("https://crm.example/a b", set(), "blanks"),
        ("https://evil.example/", {"crm.example"}, "not one of hosts"),
    ],
)
def test_webhook_urls_are_only_http_to_named_hosts(url: str, hosts: set[str], problem: str) -> None:
    found = webhook_url_problem(url, hosts=frozenset(hosts))
    assert found is not None and problem in found


def test_a_good_url_has_no_problem() -> None:
    assert (
        webhook_url_problem("https://CRM.example:8443/h?x=1", hosts=frozenset({"crm.example"}))
        is None
    )


def _rule(action: str) -> str:
    return f"""
funnel: hourglass
rules:
  - id: r
    trigger: entered
    stage: closed
    action: {action}
"""


def test_a_rule_file_naming_a_bad_url_fails_to_load() -> None:
    with pytest.raises(RuleFileError) as refused:
        parse_rule_file(
            _rule(
                '{type: webhook, url: "https://evil.example/h", hosts: [crm.example],'
                " secret_env: S}"
            ),
            path=Path("rules/x.yaml"),
        )
    assert "not one of hosts" in str(refused.value)
    with pytest.raises(RuleFileError):
        parse_rule_file(
            _rule('{type: webhook, url: "https://u:p@crm.example/h", secret_env: S}'),
            path=Path("rules/x.yaml"),
        )


def test_check_reports_an_env_url_outside_the_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_rules(tmp_path, _rule("{type: webhook, url_env: U, secret_env: S, hosts: [crm.example]}"))
    monkeypatch.setenv("S", new_secret())
    monkeypatch.setenv("U", "https://evil.example/hook")
    assert check(tmp_path) == 0
    out = capsys.readouterr().out
    assert "r: entered hourglass/closed -> webhook: DISABLED: U: the webhook URL's host" in out
    monkeypatch.setenv("U", "gopher://crm.example/hook")
    check(tmp_path)
    assert "only http and https" in capsys.readouterr().out
    monkeypatch.setenv("U", "https://crm.example/hook")
    check(tmp_path)
    assert "-> webhook: ok" in capsys.readouterr().out


async def test_the_channel_checks_its_url_again_at_send() -> None:
    delivery = Delivery(
        followup_id="f",
        rule_id="r",
        trigger="entered",
        funnel="hourglass",
        contact_id="c",
        stage="closed",
        stage_change_id="s",
        record={},
    )
    async with aiohttp.ClientSession() as client:
        channel = WebhookChannel(
            client=client,
            url="https://evil.example/hook",
            key=b"k" * 32,
            headers={},
            retry_after_cap_s=60,
            allowed_hosts=frozenset({"crm.example"}),
        )
        outcome = await channel.deliver(delivery, timeout_s=1)
    assert (outcome.ok, outcome.final) == (False, True)
    assert outcome.error is not None and "not one of hosts" in outcome.error
