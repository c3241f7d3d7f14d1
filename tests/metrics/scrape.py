"""Reading a control plane's Prometheus endpoint as Prometheus would: an HTTP GET of
/metrics in the text format, parsed by the Prometheus client's own parser."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Scrape:
    text: str
    samples: list[Sample]

    def value(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples whose labels include `labels` (0 when none)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def series(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name]


def scrape(url: str) -> Scrape:
    response = httpx.get(url, timeout=10.0)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    samples = [
        Sample(sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]
    return Scrape(response.text, samples)
