"""The alerts panel (``!``): the alerts live now, then every raise and clear kept, newest first.

Drawn from the app's AlertLog, which the monitors fill; it refreshes when an alert arrives while
it is open. Nothing here changes anything, so read-only mode shows it as it is.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from gpuconsole.monitor.alerts import Alert, AlertLog, AlertSeverity
from gpuconsole.settings.config import AlertSettings
from gpuconsole.ui import alert_text
from gpuconsole.ui.widgets.footer import QuietFooter

LIVE_COLUMNS = ("Since", "Alert", "Host", "About", "Message")
HISTORY_COLUMNS = ("Time", "Event", "Alert", "Host", "Message")


def severity_style(alert: Alert) -> str:
    if not alert.raised:
        return "green"
    return "bold red" if alert.severity is AlertSeverity.ERROR else "yellow"


def rules_line(settings: AlertSettings | None) -> str:
    """The thresholds in force, so an empty panel still says what would raise an alert."""
    s = settings or AlertSettings()
    if not s.enabled:
        return "Alerts are off ([alerts] enabled = false in the config file)."
    command = "; each alert is also sent to [alerts] command" if s.command else ""
    return (
        f"Alerts on: a GPU reservation idle (under {s.idle_utilization_percent:g} %) for "
        f"{s.idle_minutes:g} min, {s.temperature_c:g} °C, memory {s.memory_percent:g} % full, "
        f"a lost GPU or driver, GPU use without a reservation{command}."
    )


class AlertsScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    AlertsScreen { align: center middle; }
    #alerts {
        width: 96%;
        height: 90%;
        border: thick $accent;
        background: $panel;
        padding: 0 1;
    }
    #alerts-title { text-style: bold; }
    .alerts-heading { margin-top: 1; text-style: bold; }
    #alerts-live { height: auto; max-height: 40%; }
    #alerts-history { height: 1fr; }
    """

    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("exclamation_mark", "close", "Back", show=False),
        Binding("q", "close", "Back", show=False),
    ]

    def __init__(
        self, log: AlertLog, settings: AlertSettings | None = None, with_host: bool = True
    ) -> None:
        super().__init__()
        self.alert_log = log
        self.settings = settings
        self.with_host = with_host

    def compose(self) -> ComposeResult:
        with Vertical(id="alerts"):
            yield Static("Alerts", id="alerts-title")
            yield Static(rules_line(self.settings), id="alerts-rules", markup=False)
            yield Static("Live now", classes="alerts-heading", id="alerts-live-heading")
            yield DataTable(id="alerts-live", cursor_type="row", zebra_stripes=True)
            yield Static("History, newest first", classes="alerts-heading")
            yield DataTable(id="alerts-history", cursor_type="row", zebra_stripes=True)
        yield QuietFooter()

    def on_mount(self) -> None:
        for table_id, columns in (
            ("#alerts-live", LIVE_COLUMNS),
            ("#alerts-history", HISTORY_COLUMNS),
        ):
            table = self.query_one(table_id, DataTable)
            for label in columns:
                if label != "Host" or self.with_host:
                    table.add_column(label, key=label)
        self.alerts_changed()
        self.query_one("#alerts-history", DataTable).focus()

    def _add(
        self, table: DataTable[str | Text], columns: tuple[str, ...], row: list[str | Text]
    ) -> None:
        """Add ``row`` (one cell per column), without the host cell in a one-host console.
        Strings go in as Text: a DataTable reads a str as markup, and alert text is not."""
        if not self.with_host:
            del row[columns.index("Host")]
        table.add_row(*(Text(c) if isinstance(c, str) else c for c in row))

    def alerts_changed(self) -> None:
        """The log changed (or the panel opened): fill both lists from it."""
        now = time.time()
        live = self.alert_log.live
        history = self.alert_log.history
        self.query_one("#alerts-title", Static).update(
            f"Alerts — {len(live)} live, {len(history)} in the history"
        )
        table: DataTable[str | Text] = self.query_one("#alerts-live", DataTable)
        table.clear()
        for alert in live:
            row: list[str | Text] = [
                alert_text.clock(alert.started_at, now),
                Text(alert_text.TITLES[alert.kind], style=severity_style(alert)),
                alert.host,
                alert_text.subject(alert),
                alert.message,
            ]
            self._add(table, LIVE_COLUMNS, row)
        if not live:
            self._add(table, LIVE_COLUMNS, ["", "none", "", "", ""])
        table = self.query_one("#alerts-history", DataTable)
        table.clear()
        for alert in history:
            row = [
                alert_text.clock(alert.at, now),
                Text(alert.state, style=severity_style(alert)),
                alert_text.TITLES[alert.kind],
                alert.host,
                alert.message,
            ]
            self._add(table, HISTORY_COLUMNS, row)

    def action_close(self) -> None:
        self.dismiss(None)
