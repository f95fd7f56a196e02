"""A small keep-alive HTTP client for decide's API, for the demo, simulations and benchmarks."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class Client:
    def __init__(self, base_url: str, timeout: float = 10.0, api_key: str | None = None) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Ocp-Apim-Subscription-Key"] = api_key
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        payload = None if body is None else json.dumps(body)
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, payload, self.headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                if attempt == 2:
                    raise
        parsed = json.loads(data) if data else None
        if response.status >= 400:
            raise ApiError(response.status, parsed)
        return parsed

    def rank(self, context: Any, actions: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
        return self.request("POST", "/rank", {"contextFeatures": context, "actions": actions, **options})

    def reward(self, event_id: str, value: float, loop: str | None = None) -> Any:
        body: dict[str, Any] = {"eventId": event_id, "value": value}
        if loop:
            body["loop"] = loop
        return self.request("POST", "/reward", body)

    def close(self) -> None:
        self.connection.close()
