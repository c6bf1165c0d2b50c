#!/usr/bin/env python3
"""File: tests/deploy/promql_check.py — every PromQL expression we ship is valid and has data.

Usage: promql_check.py PROMETHEUS_URL START END DASHBOARD_JSON
  PROMETHEUS_URL  a Prometheus that scraped a segserve which served and trained something
                  (tests/deploy/prometheus_scrape_test.sh) and loaded deploy/prometheus/alerts.yml
  START END       the window (unix seconds) of that activity; queries are range queries over
                  it (1 s step), so a series that existed at any moment of the run counts
  DASHBOARD_JSON  deploy/grafana/segserve.json

Checked, against the real Prometheus:
  1. validity: every expression of the dashboard (panel targets and the label_values()
     queries of its variables) and of every loaded alert rule (/api/v1/rules) is accepted
     by /api/v1/query_range (a parse or type error is a failure);
  2. data: every dashboard expression returns at least one non-NaN sample, with the labels
     its legend shows ({{label}}); alert rules are
     thresholds (empty while nothing is wrong), so for them, and for the dashboard too,
     every vector selector in the expression (e.g. `segserve_queue_depth`,
     `segserve_training_jobs{state="FAILED"}`) must select a series. A renamed metric or
     label breaks one of these.
Selectors that legitimately select nothing until an event happens are listed in EXEMPT
with the reason; for them the metric must still exist with the labels they match on.
Grafana variables are substituted as Grafana would: $job/$instance/$model by the values
their label_values() query found, $__rate_interval by RATE_INTERVAL.
Prints one line per problem; exit 1 if any.
"""
import json
import math
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

RATE_INTERVAL = "10s"  # Grafana: max(4 x scrape interval, step + scrape); scrape is 1 s here

# (selector matcher that never matches in a healthy run, reason). A selector containing
# the matcher may select nothing; its metric must still exist with those label names.
EXEMPT = [
    ('code=~"INTERNAL|UNKNOWN|UNAVAILABLE|DATA_LOSS|DEADLINE_EXCEEDED|UNIMPLEMENTED"',
     "server-side errors: a healthy run has none (SegserveHighErrorRate, error-ratio panel)"),
    ('code="RESOURCE_EXHAUSTED"',
     "load shedding: the test does not fill a queue (SegserveQueueSaturated)"),
]

KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "inf", "nan", "atan2"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}  # may be followed by `by (...)` before `(`
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def selectors(expr):
    """The vector selectors of a PromQL expression as (metric name or '', [matcher strings])."""
    out, i, n = [], 0, len(expr)
    while i < n:
        c = expr[i]
        if c == "#":  # comment to end of line
            while i < n and expr[i] != "\n":
                i += 1
        elif c in "\"'`":
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if expr[j] == "\\" and c != "`" else 1
            i = j + 1
        elif c == "[":  # range or subquery duration
            i = expr.index("]", i) + 1
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = re.compile(r"(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)[a-z]*").match(expr, i)
            i = m.end()
        elif c.isalpha() or c in "_:":
            m = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*").match(expr, i)
            name, i = m.group(0), m.end()
            j = i
            while j < n and expr[j].isspace():
                j += 1
            nxt = expr[j] if j < n else ""
            if name.lower() in GROUPING:
                if nxt == "(":  # label list: skip it
                    i = expr.index(")", j) + 1
            elif name.lower() == "offset":
                m = re.compile(r"\s*-?[0-9a-z]+").match(expr, i)
                i = m.end()
            elif name.lower() in KEYWORDS or name in AGGREGATIONS or nxt == "(":
                pass  # operator or function / aggregation
            elif nxt == "{":
                k = matchers_end(expr, j)
                out.append((name, split_matchers(expr[j + 1:k])))
                i = k + 1
            else:
                out.append((name, []))
        elif c == "{":  # selector without a metric name
            k = matchers_end(expr, i)
            out.append(("", split_matchers(expr[i + 1:k])))
            i = k + 1
        else:
            i += 1
    return out


def matchers_end(expr, i):
    """Index of the '}' closing the matcher list opened at expr[i]."""
    j = i + 1
    while expr[j] != "}":
        if expr[j] in "\"'`":
            q = expr[j]
            j += 1
            while expr[j] != q:
                j += 2 if expr[j] == "\\" and q != "`" else 1
        j += 1
    return j


def split_matchers(body):
    return [m.strip() for m in re.findall(r'\s*([A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*(?:"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`))\s*,?', body)]


def norm(m):
    return re.sub(r"\s+", "", m)


class Prom:
    def __init__(self, url, start, end):
        self.url, self.start, self.end = url.rstrip("/"), start, end
        self.queries = 0

    def range(self, expr):
        """(error or None, result list) of a range query over the window."""
        self.queries += 1
        data = urllib.parse.urlencode({"query": expr, "start": self.start, "end": self.end,
                                       "step": "1"}).encode()
        try:
            with urllib.request.urlopen(self.url + "/api/v1/query_range", data, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            try:
                body = json.load(e)
            except ValueError:
                return f"HTTP {e.code}", []
        except (urllib.error.URLError, OSError) as e:
            return f"Prometheus unreachable: {e}", []
        if body.get("status") != "success":
            return f"{body.get('errorType')}: {body.get('error')}", []
        return None, body["data"]["result"]


def has_values(result):
    return any(not math.isnan(float(v)) for s in result for _, v in s.get("values", []))


def grafana_regex(values):
    # Grafana's multi-value substitution for =~: regex-escaped values joined by |, in a
    # PromQL string (so every backslash doubled).
    esc = [re.sub(r"([\\.+*?^$()\[\]{}|])", r"\\\\\1", v) for v in values]
    return "(" + "|".join(esc) + ")"


def substitute(expr, variables):
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("${__rate_interval}", RATE_INTERVAL)
    expr = expr.replace("$__interval", "1s").replace("${__interval}", "1s")
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        expr = re.sub(r"\$\{" + name + r"(:[a-z]+)?\}|\[\[" + name + r"\]\]|\$" + name + r"\b",
                      lambda _: value, expr)
    return expr


def panels(dashboard):
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])  # collapsed rows


def main():
    if len(sys.argv) != 5:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    url, start, end, dash_file = sys.argv[1:]
    prom = Prom(url, start, end)
    dashboard = json.load(open(dash_file))
    problems, exempted = [], set()

    checked = set()

    def check_selectors(where, expr):
        try:
            found = selectors(expr)
        except (IndexError, ValueError, AttributeError):
            problems.append(f"{where}: cannot find the selectors of {expr}")
            return
        for name, matchers in found:
            sel = name + ("{" + ",".join(matchers) + "}" if matchers else "")
            if sel in checked:
                continue
            checked.add(sel)
            err, result = prom.range(f"count({sel})")
            if err:
                problems.append(f"{where}: selector {sel}: {err}")
                continue
            if has_values(result):
                continue
            reasons = [r for m, r in EXEMPT if norm(m) in map(norm, matchers)]
            if not reasons:
                problems.append(f"{where}: selector {sel} selects no series (renamed metric or label?)")
                continue
            # Exempt: the metric must still exist with every label name it matches on.
            labels = sorted({re.match(r"[A-Za-z_][A-Za-z0-9_]*", m).group(0) for m in matchers})
            probe = name + "{" + ",".join(f'{label}!=""' for label in labels) + "}"
            err, result = prom.range(f"count({probe})")
            if err or not has_values(result):
                problems.append(f"{where}: exempt selector {sel}, but {probe} selects nothing either")
            else:
                exempted.add(sel)

    # Variables, in order (a later one may use an earlier one).
    variables, n_exprs = {}, 0
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q, re.S)
        where = f"variable ${v['name']}"
        if not m:
            problems.append(f"{where}: query '{q}' is not label_values(EXPR, LABEL)")
            continue
        expr = substitute(m.group(1), variables)
        n_exprs += 1
        err, result = prom.range(f"count by ({m.group(2)}) ({expr})")
        values = sorted({s["metric"].get(m.group(2), "") for s in result} - {""})
        if err:
            problems.append(f"{where}: {err}")
        elif not values:
            problems.append(f"{where}: {q} found no values")
        check_selectors(where, expr)
        variables[v["name"]] = grafana_regex(values) if values else "(no-values)"

    for p in panels(dashboard):
        for t in p.get("targets", []):
            if "expr" not in t:
                continue
            where = f"panel '{p.get('title')}' {t.get('refId')}"
            expr = substitute(t["expr"], variables)
            n_exprs += 1
            if "$" in expr:
                problems.append(f"{where}: unknown variable left in {expr}")
                continue
            err, result = prom.range(expr)
            if err:
                problems.append(f"{where}: invalid: {err}: {t['expr']}")
                continue
            if not has_values(result):
                problems.append(f"{where}: no data: {expr}")
            else:
                # The legend's {{label}}s must be labels of the result (a `by (...)` on a
                # renamed label still returns data, but one unlabelled series).
                for label in re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", t.get("legendFormat", "")):
                    if not any(label in r["metric"] for r in result):
                        problems.append(f"{where}: legend uses {{{{{label}}}}}, which no result series has: {expr}")
            check_selectors(where, expr)

    try:
        with urllib.request.urlopen(prom.url + "/api/v1/rules", timeout=10) as r:
            groups = json.load(r)["data"]["groups"]
    except (OSError, ValueError, KeyError) as e:
        problems.append(f"GET /api/v1/rules: {e}")
        groups = []
    rules = [r for g in groups for r in g["rules"]]
    if not rules:
        problems.append("Prometheus loaded no alert rules")
    for r in rules:
        where = f"alert {r['name']}"
        n_exprs += 1
        err, _ = prom.range(r["query"])
        if err:
            problems.append(f"{where}: invalid: {err}")
            continue
        check_selectors(where, r["query"])

    for p in problems:
        print(f"promql_check: FAIL {p}")
    for sel in sorted(exempted):
        print(f"promql_check: exempt (no series until an event): {sel}")
    print(f"promql_check: {n_exprs} expressions ({len(rules)} alert rules), {prom.queries} queries, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
