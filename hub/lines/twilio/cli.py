"""`simpul whatsapp templates create|status`: the regency's operator creates the WhatsApp
templates in the regency's own Twilio account and follows their approval (docs/sms.md). The
work itself is hub/lines/twilio/templates.py; this file only talks to the terminal."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

whatsapp_app = typer.Typer(help="WhatsApp on Twilio.", no_args_is_help=True)
templates_app = typer.Typer(help="Approved templates for replies after WhatsApp's 24-hour window.",
                            no_args_is_help=True)
whatsapp_app.add_typer(templates_app, name="templates")
out = Console()
err = Console(stderr=True)


def _adapter():
    from hub.lines.twilio import adapter_for
    from hub.settings import get_settings

    s = get_settings()
    if not (s.twilio_account_sid and s.twilio_auth_token):
        err.print("[bold red]error:[/] set SIMPUL_TWILIO_ACCOUNT_SID and SIMPUL_TWILIO_AUTH_TOKEN "
                  "(the regency's Twilio account)", soft_wrap=True)
        raise typer.Exit(2)
    return s, adapter_for(s)


@templates_app.command("create")
def create_cmd(kind: Optional[list[str]] = typer.Option(
        None, "--kind", help="Only this reply kind (repeatable); given kinds are created again even if they have one"),
        regency: Optional[str] = typer.Option(None, help="Prefix of the template names (default: the config folder's name)")):
    """Create one Content API template per reply kind without one, submit each to WhatsApp
    (category UTILITY), and write the ContentSids into whatsapp_templates.yaml."""
    from adapters.base import DeliveryError
    from hub.lines.twilio import templates

    settings, adapter = _adapter()
    name = regency or Path(settings.config_dir).resolve().name
    path = templates.config_path(settings.config_dir)

    def created(k: str, sid: str, status: str) -> None:
        out.print(f"{k}: {sid} (WhatsApp: {status})")

    try:
        made = templates.create(settings.config_dir, adapter, name, kind or None, on_created=created)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2)
    except DeliveryError as exc:
        err.print(f"[bold red]error:[/] Twilio refused: {exc}. Templates created before this one are "
                  f"already in {path}; run the command again for the rest.", soft_wrap=True)
        raise typer.Exit(1)
    if not made:
        out.print(f"Every reply kind has a template in {path}; nothing to create "
                  "(--kind KIND creates one again).")
        return
    out.print(f"{len(made)} template(s) written to {path}. WhatsApp reviews them (minutes to a day): "
              "run `simpul whatsapp templates status`, then restart the hub.")


@templates_app.command("status")
def status_cmd():
    """WhatsApp's verdict on each configured template (approved, pending, rejected + reason)."""
    from adapters.base import DeliveryError
    from hub.lines.twilio import templates

    settings, adapter = _adapter()
    try:
        got = templates.refresh(settings.config_dir, adapter)
    except DeliveryError as exc:
        err.print(f"[bold red]error:[/] Twilio refused: {exc}", soft_wrap=True)
        raise typer.Exit(1)
    for k, v in got.items():
        reason = f" — {v['rejection_reason']}" if v.get("rejection_reason") else ""
        out.print(f"{k}: {v['sid']} {v['status']}{reason}")
    missing, unapproved = templates.problems(settings.config_dir)
    if missing:
        out.print(f"no template yet: {', '.join(missing)} (simpul whatsapp templates create)")
    if missing or unapproved:
        raise typer.Exit(1)
    out.print("All templates approved.")
