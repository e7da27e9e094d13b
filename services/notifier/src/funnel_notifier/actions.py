"""Turn loaded rules into working channels, or explain why a rule is disabled.

A rule whose action needs something the environment lacks (a webhook URL or
secret from env, a well-formed ``whsec_`` secret) is disabled with a warning
at start-up and reported by ``check``; the other rules still run. Template
problems and bad rule files are errors: they stop start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from funnel_shared.publishing import Publisher

from funnel_notifier.channels import Channel
from funnel_notifier.channels.kafka_task import KafkaTaskChannel
from funnel_notifier.channels.mail import EmailChannel, Renderer, SmtpConfig, TemplateProblem
from funnel_notifier.channels.webhook import WebhookChannel
from funnel_notifier.domain.rules import (
    EmailAction,
    KafkaAction,
    LoadedRule,
    RuleFileError,
    WebhookAction,
    webhook_url_problem,
)
from funnel_notifier.domain.signing import decode_secret

__all__ = ["ActiveRules", "Resources", "resolve_rules"]


@dataclass
class Resources:
    """What channels are built from; only ``check`` leaves the clients out."""

    templates_dir: Path
    smtp: SmtpConfig | None = None
    http: aiohttp.ClientSession | None = None
    publisher: Publisher | None = None
    retry_after_cap_s: float = 3600.0


@dataclass
class ActiveRules:
    rules: list[LoadedRule] = field(default_factory=list)
    channels: dict[str, Channel] = field(default_factory=dict)
    disabled: dict[str, str] = field(default_factory=dict)  # rule id -> why


def resolve_rules(
    loaded: list[LoadedRule], *, env: Mapping[str, str], resources: Resources
) -> ActiveRules:
    """Raises ``RuleFileError`` for a template problem, naming the rule's file."""
    renderer = Renderer(resources.templates_dir)
    active = ActiveRules()
    for item in loaded:
        action = item.rule.action
        if isinstance(action, EmailAction):
            try:
                renderer.check(action.template)
            except TemplateProblem as exc:
                raise RuleFileError(item.source, [f"rule {item.rule.id}: {exc}"]) from None
        problem = _missing(action, env)
        if problem is not None:
            active.disabled[item.rule.id] = problem
            continue
        active.rules.append(item)
        channel = _channel(action, env=env, resources=resources, renderer=renderer)
        if channel is not None:
            active.channels[item.rule.id] = channel
    return active


def _missing(action: object, env: Mapping[str, str]) -> str | None:
    if not isinstance(action, WebhookAction):
        return None
    if action.url_env is not None:
        url = env.get(action.url_env)
        if not url:
            return f"the environment variable {action.url_env} (the webhook URL) is not set"
        problem = webhook_url_problem(url, hosts=action.allowed_hosts)
        if problem is not None:
            return f"{action.url_env}: {problem}"
    secret = env.get(action.secret_env)
    if not secret:
        return f"the environment variable {action.secret_env} (the webhook secret) is not set"
    try:
        decode_secret(secret)
    except ValueError as exc:  # The message never contains the secret.
        return f"{action.secret_env}: {exc}"
    return None


def _channel(
    action: object, *, env: Mapping[str, str], resources: Resources, renderer: Renderer
) -> Channel | None:
    if isinstance(action, WebhookAction) and resources.http is not None:
        url = action.url or env[action.url_env or ""]
        return WebhookChannel(
            client=resources.http,
            url=url,
            key=decode_secret(env[action.secret_env]),
            headers=dict(action.headers),
            allowed_hosts=action.allowed_hosts,
            retry_after_cap_s=resources.retry_after_cap_s,
        )
    if isinstance(action, EmailAction) and resources.smtp is not None:
        return EmailChannel(
            renderer=renderer,
            smtp=resources.smtp,
            template=action.template,
            to=action.to,
            sender=action.from_,
        )
    if isinstance(action, KafkaAction) and resources.publisher is not None:
        return KafkaTaskChannel(publisher=resources.publisher, topic=action.topic, task=action.task)
    return None
