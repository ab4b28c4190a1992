"""shoal-lab/items-api: a small FastAPI application keeping items in PostgreSQL.

* ``GET /``            this container's hostname (which replica answered)
* ``GET /health``      200 ``{"status": "ok"}`` once the database answers, 503 before
* ``POST /items``      ``{"name": …, "description": …}`` → the stored row (201)
* ``GET /items``       every row, oldest first; ``GET /items/{id}`` one
* ``GET /docs``        Swagger UI, its JS/CSS served by the app itself (``/static``): no
                       internet needed; ``/openapi.json`` the schema

The database: ``DATABASE_URL`` (``postgresql://user:password@host:5432/db``), else
``POSTGRES_HOST`` (default ``db``), ``POSTGRES_PORT`` (5432), ``POSTGRES_USER`` (postgres),
``POSTGRES_PASSWORD`` or ``POSTGRES_PASSWORD_FILE``, ``POSTGRES_DB`` (= user). The app
answers at once and connects in the background, retrying every second until the database
answers; then it creates the ``items`` table if it is missing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from contextlib import closing
from typing import Any

import psycopg2
import psycopg2.extras
from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

log = logging.getLogger("uvicorn.error")

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    description text,
    created     timestamptz NOT NULL DEFAULT now()
)
"""


def dsn() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    password = os.environ.get("POSTGRES_PASSWORD", "")
    if os.environ.get("POSTGRES_PASSWORD_FILE"):
        with open(os.environ["POSTGRES_PASSWORD_FILE"]) as f:
            password = f.read().strip()
    user = os.environ.get("POSTGRES_USER", "postgres")
    parts = {
        "host": os.environ.get("POSTGRES_HOST", "db"),
        "port": os.environ.get("POSTGRES_PORT", "5432"),
        "user": user,
        "password": password,
        "dbname": os.environ.get("POSTGRES_DB", user),
        "connect_timeout": "5",
    }
    return psycopg2.extensions.make_dsn(**parts)


class Database:
    """Connects in the background until the database answers; then ``ready`` is set."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.last_error = "not connected yet"

    def start(self) -> None:
        threading.Thread(target=self._wait, name="db-wait", daemon=True).start()

    def _wait(self) -> None:
        while True:
            try:
                with closing(psycopg2.connect(dsn())) as conn, conn, conn.cursor() as cur:
                    cur.execute(SCHEMA)
                self.ready.set()
                log.info("database ready")
                return
            except psycopg2.Error as e:
                self.last_error = str(e).strip()
                log.info("waiting for the database: %s", self.last_error)
                time.sleep(1.0)

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        if not self.ready.is_set():
            raise HTTPException(503, f"database not ready: {self.last_error}")
        try:
            with closing(psycopg2.connect(dsn())) as conn, conn:
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    cur.execute(sql, args)
                    return [dict(r) for r in cur.fetchall()] if cur.description else []
        except psycopg2.OperationalError as e:
            raise HTTPException(503, f"database: {str(e).strip()}") from e


class ItemIn(BaseModel):
    name: str
    description: str | None = None


class Item(ItemIn):
    id: int
    created: str


db = Database()
app = FastAPI(
    title="items-api",
    description="A shoal lab demo: items kept in PostgreSQL.",
    version="1",
    docs_url=None,
    redoc_url=None,
)
app.mount("/static", StaticFiles(directory="/app/static"), name="static")


@app.on_event("startup")
def startup() -> None:
    db.start()


@app.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - Swagger UI",
        swagger_js_url="/static/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui.css",
        swagger_favicon_url="/static/favicon-32x32.png",
    )


@app.get("/")
def root() -> dict[str, str]:
    return {"app": "items-api", "hostname": socket.gethostname()}


@app.get("/health")
def health() -> JSONResponse:
    if not db.ready.is_set():
        return JSONResponse({"status": "waiting", "database": db.last_error}, status_code=503)
    try:
        db.query("SELECT 1")
    except HTTPException as e:
        return JSONResponse({"status": "error", "database": e.detail}, status_code=503)
    return JSONResponse({"status": "ok", "hostname": socket.gethostname()})


def _item(row: dict[str, Any]) -> Item:
    return Item(**{**row, "created": row["created"].isoformat()})


@app.post("/items", status_code=201, response_model=Item)
def create_item(item: ItemIn) -> Item:
    rows = db.query(
        "INSERT INTO items (name, description) VALUES (%s, %s) RETURNING *",
        (item.name, item.description),
    )
    return _item(rows[0])


@app.get("/items", response_model=list[Item])
def list_items() -> list[Item]:
    return [_item(r) for r in db.query("SELECT * FROM items ORDER BY id")]


@app.get("/items/{item_id}", response_model=Item)
def get_item(item_id: int) -> Item:
    rows = db.query("SELECT * FROM items WHERE id = %s", (item_id,))
    if not rows:
        raise HTTPException(404, f"no item {item_id}")
    return _item(rows[0])
