"""E-mail over SMTP from Jinja2 templates: subject, text and HTML parts.

Templates live in ``templates/`` beside the rule files, as
``<name>.subject.j2``, ``<name>.txt.j2`` and ``<name>.html.j2``. HTML is
autoescaped; an undefined variable is an error (``StrictUndefined``), which
fails the follow-up instead of sending a broken mail.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiosmtplib
import jinja2
from email_validator import EmailNotValidError, validate_email

from funnel_notifier.channels import Delivery, Outcome

__all__ = [
    "INVALID_RECIPIENT",
    "EmailChannel",
    "Renderer",
    "SmtpConfig",
    "TemplateProblem",
    "one_recipient",
]

PARTS = ("subject", "txt", "html")


# The start of the error of a follow-up whose rendered recipient is not one valid address.
INVALID_RECIPIENT = "invalid recipient"


class TemplateProblem(ValueError):
    """A template is missing, does not parse, or needs a variable the context lacks; or what
    it rendered cannot be sent (not one valid recipient, a line break in a header). No retry
    can fix any of these: the follow-up fails for good."""


def one_recipient(rendered: str) -> str:
    """``rendered`` as exactly one valid address, else ``TemplateProblem``.

    Parsed by ``email-validator``: no lists ("a@x, b@y"), no display names, no line breaks,
    a domain with a dot (no special-use names such as ``.test`` or ``localhost``). The
    address comes from event data (``{{ traits.email }}``), which any client can set.
    """
    try:
        parsed = validate_email(rendered, check_deliverability=False, allow_display_name=False)
    except EmailNotValidError as exc:
        raise TemplateProblem(f"{INVALID_RECIPIENT} {_shown(rendered)}: {exc}") from None
    return parsed.normalized


def _shown(value: str) -> str:
    """A client's value in an error message: quoted, escaped, at most 200 characters."""
    return repr(value[:200]) + ("..." if len(value) > 200 else "")


class Renderer:
    def __init__(self, templates_dir: Path) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False
            ),
            keep_trailing_newline=True,
        )

    def check(self, name: str) -> None:
        """Fail unless all three parts of template ``name`` exist and parse."""
        for part in PARTS:
            try:
                self._env.get_template(f"{name}.{part}.j2")
            except jinja2.TemplateNotFound:
                raise TemplateProblem(f"template {name}.{part}.j2 not found") from None
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateProblem(f"template {name}.{part}.j2: {exc}") from None

    def render(self, name: str, context: dict[str, Any]) -> dict[str, str]:
        rendered = {}
        for part in PARTS:
            file_name = f"{name}.{part}.j2"
            try:
                rendered[part] = self._env.get_template(file_name).render(context)
            except jinja2.TemplateError as exc:
                raise TemplateProblem(f"template {file_name}: {exc}") from None
        return rendered

    def render_string(self, source: str, context: dict[str, Any], *, what: str) -> str:
        try:
            return self._env.from_string(source).render(context).strip()
        except jinja2.TemplateError as exc:
            raise TemplateProblem(f"{what} {source!r}: {exc}") from None


class SmtpConfig:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        starttls: bool,
        message_id_domain: str,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.message_id_domain = message_id_domain


def template_context(delivery: Delivery) -> dict[str, Any]:
    return {
        "traits": delivery.traits,
        "contact_id": delivery.contact_id,
        "funnel": delivery.funnel,
        "stage": delivery.stage,
        "followup_id": delivery.followup_id,
        "rule_id": delivery.rule_id,
        "trigger": delivery.trigger,
        "record": delivery.record,  # The triggering record: stage change, stall or merge.
        "change": delivery.record,  # Its older name, kept for existing templates.
    }


class EmailChannel:
    def __init__(
        self, *, renderer: Renderer, smtp: SmtpConfig, template: str, to: str, sender: str
    ) -> None:
        self._renderer = renderer
        self._smtp = smtp
        self._template = template
        self._to = to
        self._sender = sender

    def build(self, delivery: Delivery) -> EmailMessage:
        """The message; raises ``TemplateProblem`` for a missing variable."""
        context = template_context(delivery)
        recipient = one_recipient(self._renderer.render_string(self._to, context, what="recipient"))
        parts = self._renderer.render(self._template, context)
        message = EmailMessage()
        try:
            message["From"] = self._sender
            message["To"] = recipient
            message["Subject"] = parts["subject"].strip()
        except ValueError as exc:  # A CR or LF from event data: it cannot go into a header.
            raise TemplateProblem(f"a header cannot hold the rendered value: {exc}") from None
        message["Date"] = formatdate(localtime=False)
        # The same Message-ID on every try lets mail systems drop a duplicate.
        message["Message-ID"] = f"<{delivery.followup_id}@{self._smtp.message_id_domain}>"
        message.set_content(parts["txt"])
        message.add_alternative(parts["html"], subtype="html")
        return message

    async def deliver(self, delivery: Delivery, *, timeout_s: float) -> Outcome:
        try:
            message = self.build(delivery)
        except TemplateProblem as exc:
            return Outcome(ok=False, final=True, error=str(exc))
        try:
            await aiosmtplib.send(
                message,
                hostname=self._smtp.host,
                port=self._smtp.port,
                username=self._smtp.username,
                password=self._smtp.password,
                start_tls=self._smtp.starttls,
                timeout=timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return Outcome(ok=False, final=True, error=f"recipients refused: {exc}")
        except aiosmtplib.SMTPResponseException as exc:
            return Outcome(ok=False, final=exc.code >= 500, error=f"SMTP {exc.code}: {exc.message}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
        return Outcome(ok=True)
