#!/usr/bin/env python3
"""Generates the Grafana dashboards in dashboards/*.json.

The JSON files are the artifacts Grafana loads (and what is reviewed in a
diff); this file is where the panels and their PromQL are written, one line
per panel. Edit here, then run:

    python3 deploy/grafana/generate.py           # rewrite dashboards/*.json
    python3 deploy/grafana/generate.py --check   # exit 1 if they are stale

scripts/check-deploy runs the --check form. Standard library only.
"""
import json
import os
import sys

OUTPUTS = {}
DS = {"type": "prometheus", "uid": "${datasource}"}

class Dash:
    def __init__(self, uid, title, tags, description):
        self.uid, self.title, self.tags, self.description = uid, title, tags, description
        self.panels, self.vars = [], []
        self.next_id, self.x, self.y, self.rowh = 1, 0, 0, 0
        self.vars.append({
            "name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "includeAll": False,
            "multi": False, "options": [], "refresh": 1, "regex": "",
        })

    def var(self, name, query, label=None, multi=True, include_all=True, all_value=None):
        v = {
            "name": name, "label": label or name, "type": "query", "datasource": DS,
            "query": query, "definition": query, "refresh": 2, "sort": 1,
            "multi": multi, "includeAll": include_all, "current": {}, "hide": 0,
            "options": [], "regex": "",
        }
        if all_value is not None:
            v["allValue"] = all_value
        self.vars.append(v)

    def _id(self):
        i = self.next_id; self.next_id += 1; return i

    def _place(self, w, h):
        if self.x + w > 24:
            self.x = 0; self.y += self.rowh; self.rowh = 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w; self.rowh = max(self.rowh, h)
        return pos

    def row(self, title):
        if self.x: self.x = 0; self.y += self.rowh; self.rowh = 0
        self.panels.append({"id": self._id(), "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def text(self, title, content, w=24, h=3):
        self.panels.append({"id": self._id(), "type": "text", "title": title,
                            "gridPos": self._place(w, h),
                            "options": {"mode": "markdown", "content": content}})

    def _targets(self, targets):
        out = []
        for i, t in enumerate(targets):
            expr, legend = t if isinstance(t, tuple) else (t, "")
            out.append({"refId": chr(ord("A") + i), "datasource": DS, "expr": expr,
                        "legendFormat": legend or "__auto", "range": True, "instant": False,
                        "editorMode": "code"})
        return out

    def ts(self, title, targets, unit="short", w=12, h=8, interval=None, desc="", mn=None, mx=None, stack=False):
        p = {"id": self._id(), "type": "timeseries", "title": title, "description": desc,
             "datasource": DS, "gridPos": self._place(w, h), "targets": self._targets(targets),
             "fieldConfig": {"defaults": {"unit": unit, "custom": {
                 "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                 "stacking": {"mode": "normal" if stack else "none", "group": "A"}}},
                 "overrides": []},
             "options": {"legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                                    "calcs": ["lastNotNull", "max"]},
                         "tooltip": {"mode": "multi", "sort": "desc"}}}
        if mn is not None: p["fieldConfig"]["defaults"]["min"] = mn
        if mx is not None: p["fieldConfig"]["defaults"]["max"] = mx
        if interval: p["interval"] = interval
        self.panels.append(p)

    def stat(self, title, expr, unit="short", w=4, h=4, interval=None, desc="", thresholds=None):
        steps = [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in (thresholds or [])]
        p = {"id": self._id(), "type": "stat", "title": title, "description": desc,
             "datasource": DS, "gridPos": self._place(w, h), "targets": self._targets([expr]),
             "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                             "overrides": []},
             "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                         "colorMode": "value", "graphMode": "area", "textMode": "auto",
                         "justifyMode": "auto", "orientation": "auto"}}
        if interval: p["interval"] = interval
        self.panels.append(p)

    def json(self):
        return {
            "__inputs": [], "uid": self.uid, "title": self.title, "tags": self.tags,
            "description": self.description, "editable": True, "graphTooltip": 1,
            "schemaVersion": 39, "version": 1, "refresh": "1m",
            "time": {"from": "now-6h", "to": "now"}, "timepicker": {}, "timezone": "",
            "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
            "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                      "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                      "name": "Annotations & Alerts", "type": "dashboard"}]},
            "links": [], "templating": {"list": self.vars}, "panels": self.panels,
        }

    def write(self, name):
        OUTPUTS[name] = json.dumps(self.json(), indent=2) + "\n"


def build():
    # ---------------------------------------------------------------- gpu-fleet
    d = Dash("tessera-gpu-fleet", "GPU fleet (dcgm-exporter)", ["tessera", "gpu", "dcgm"],
             "NVIDIA GPUs via dcgm-exporter's default counters. Fleet and node rows read the "
             "recording rules of deploy/rules/dcgm.yml; the GPU row reads raw series.")
    d.var("Hostname", "label_values(DCGM_FI_DEV_GPU_UTIL, Hostname)", all_value=".*")
    d.var("modelName", 'label_values(DCGM_FI_DEV_GPU_UTIL{Hostname=~"$Hostname"}, modelName)', label="GPU model", all_value=".*")
    d.var("gpu", 'label_values(DCGM_FI_DEV_GPU_UTIL{Hostname=~"$Hostname", modelName=~"$modelName"}, gpu)', label="GPU index", all_value=".*")
    N = 'Hostname=~"$Hostname", modelName=~"$modelName"'
    G = N + ', gpu=~"$gpu"'

    d.row("Fleet (all nodes; recording rules, cluster:*)")
    d.stat("GPUs reporting", "sum(cluster:DCGM_FI_DEV_GPU_UTIL:count)", interval="1m")
    d.stat("Mean GPU utilisation", "cluster:DCGM_FI_DEV_GPU_UTIL:avg", unit="percent", interval="1m",
           desc="Mean over all GPUs (weighted by GPUs per node).")
    d.stat("Idle GPUs (<= 5%)", "sum(cluster:DCGM_FI_DEV_GPU_UTIL:idle_gpus)", interval="1m")
    d.stat("GPUs with an XID error", "sum(cluster:DCGM_FI_DEV_XID_ERRORS:nonzero_gpus)", interval="1m",
           thresholds=[(1, "red")], desc="GPUs whose last XID error code is not 0.")
    d.stat("Fleet GPU power", "sum(cluster:DCGM_FI_DEV_POWER_USAGE:sum)", unit="watt", interval="1m")
    d.stat("Framebuffer used", "cluster:DCGM_FI_DEV_FB_USED:ratio", unit="percentunit", interval="1m",
           thresholds=[(0.9, "orange")])
    d.ts("GPU utilisation by model", [("modelName:DCGM_FI_DEV_GPU_UTIL:avg", "{{modelName}}"),
                                      ("cluster:DCGM_FI_DEV_GPU_UTIL:avg", "all GPUs")],
         unit="percent", mn=0, mx=100, interval="1m")
    d.ts("Engine activity (DCP profiling)", [
            ("cluster:DCGM_FI_PROF_GR_ENGINE_ACTIVE:avg", "graphics engine"),
            ("cluster:DCGM_FI_PROF_PIPE_TENSOR_ACTIVE:avg", "tensor pipe"),
            ("cluster:DCGM_FI_PROF_SM_ACTIVE:avg", "SM active")],
         unit="percentunit", mn=0, mx=1, interval="1m",
         desc="Ratios 0-1. SM active is off in dcgm-exporter's default CSV: empty until enabled.")
    d.ts("Hottest GPU / memory", [("cluster:DCGM_FI_DEV_GPU_TEMP:max", "GPU"),
                                  ("cluster:DCGM_FI_DEV_MEMORY_TEMP:max", "memory (HBM)")],
         unit="celsius", interval="1m")
    d.ts("Framebuffer memory", [("cluster:DCGM_FI_DEV_FB_USED:sum", "used"),
                                ("cluster:DCGM_FI_DEV_FB_FREE:sum", "free")],
         unit="mbytes", interval="1m", stack=True)

    d.row("Nodes ($Hostname; recording rules, Hostname:*)")
    d.ts("GPU utilisation per node (mean of its GPUs)",
         [(f"Hostname:DCGM_FI_DEV_GPU_UTIL:avg{{{N}}}", "{{Hostname}}")], unit="percent", mn=0, mx=100, interval="30s")
    d.ts("Tensor pipe activity per node",
         [(f"Hostname:DCGM_FI_PROF_PIPE_TENSOR_ACTIVE:avg{{{N}}}", "{{Hostname}}")], unit="percentunit", mn=0, mx=1, interval="30s")
    d.ts("Framebuffer used per node", [(f"Hostname:DCGM_FI_DEV_FB_USED:sum{{{N}}}", "{{Hostname}}")],
         unit="mbytes", interval="30s")
    d.ts("Framebuffer used share per node", [(f"Hostname:DCGM_FI_DEV_FB_USED:ratio{{{N}}}", "{{Hostname}}")],
         unit="percentunit", mn=0, mx=1, interval="30s")
    d.ts("GPU power per node", [(f"Hostname:DCGM_FI_DEV_POWER_USAGE:sum{{{N}}}", "{{Hostname}}")],
         unit="watt", interval="30s")
    d.ts("Hottest GPU and HBM per node", [(f"Hostname:DCGM_FI_DEV_GPU_TEMP:max{{{N}}}", "{{Hostname}} GPU"),
                                          (f"Hostname:DCGM_FI_DEV_MEMORY_TEMP:max{{{N}}}", "{{Hostname}} HBM")],
         unit="celsius", interval="30s")
    d.ts("GPUs with an XID error per node", [(f"Hostname:DCGM_FI_DEV_XID_ERRORS:nonzero_gpus{{{N}}} > 0", "{{Hostname}}")],
         interval="30s", desc="Only nodes with at least one such GPU are drawn.")
    d.ts("SM activity per node", [(f"Hostname:DCGM_FI_PROF_SM_ACTIVE:avg{{{N}}}", "{{Hostname}}")],
         unit="percentunit", mn=0, mx=1, interval="30s",
         desc="DCGM_FI_PROF_SM_ACTIVE is commented out in default-counters.csv: enable it to fill this panel.")

    d.row("GPUs ($Hostname, $modelName, $gpu; raw series)")
    d.ts("GPU utilisation", [(f"DCGM_FI_DEV_GPU_UTIL{{{G}}}", "{{Hostname}} gpu {{gpu}}")],
         unit="percent", mn=0, mx=100, interval="30s")
    d.ts("Memory copy utilisation", [(f"DCGM_FI_DEV_MEM_COPY_UTIL{{{G}}}", "{{Hostname}} gpu {{gpu}}")],
         unit="percent", mn=0, mx=100, interval="30s")
    d.ts("Framebuffer used", [(f"DCGM_FI_DEV_FB_USED{{{G}}}", "{{Hostname}} gpu {{gpu}}")], unit="mbytes", interval="30s")
    d.ts("Framebuffer free", [(f"DCGM_FI_DEV_FB_FREE{{{G}}}", "{{Hostname}} gpu {{gpu}}")], unit="mbytes", interval="30s")
    d.ts("Power draw", [(f"DCGM_FI_DEV_POWER_USAGE{{{G}}}", "{{Hostname}} gpu {{gpu}}")], unit="watt", interval="30s")
    d.ts("Average power from the energy counter",
         [(f"rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{G}}}[$__rate_interval]) / 1000", "{{Hostname}} gpu {{gpu}}")],
         unit="watt", interval="30s", desc="The energy counter is in mJ; its rate / 1000 is watts.")
    d.ts("GPU temperature", [(f"DCGM_FI_DEV_GPU_TEMP{{{G}}}", "{{Hostname}} gpu {{gpu}}")], unit="celsius", interval="30s")
    d.ts("Memory (HBM) temperature", [(f"DCGM_FI_DEV_MEMORY_TEMP{{{G}}}", "{{Hostname}} gpu {{gpu}}")], unit="celsius", interval="30s")
    d.ts("SM clock (MHz)", [(f"DCGM_FI_DEV_SM_CLOCK{{{G}}}", "{{Hostname}} gpu {{gpu}}")], unit="none", interval="30s")
    d.ts("Tensor pipe / graphics engine / DRAM activity", [
            (f"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{{{G}}}", "{{Hostname}} gpu {{gpu}} tensor"),
            (f"DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{G}}}", "{{Hostname}} gpu {{gpu}} graphics"),
            (f"DCGM_FI_PROF_DRAM_ACTIVE{{{G}}}", "{{Hostname}} gpu {{gpu}} dram")],
         unit="percentunit", mn=0, mx=1, interval="30s")
    d.ts("XID errors (last code, non-zero only)", [(f"DCGM_FI_DEV_XID_ERRORS{{{G}}} != 0", "{{Hostname}} gpu {{gpu}} XID {{err_code}}")],
         interval="30s", desc="The value and err_code label are the last XID code; 0 means none.")
    d.ts("NVLink bandwidth counter rate", [(f"rate(DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL{{{G}}}[$__rate_interval])", "{{Hostname}} gpu {{gpu}}")],
         interval="30s")
    d.ts("PCIe replays", [(f"rate(DCGM_FI_DEV_PCIE_REPLAY_COUNTER{{{G}}}[$__rate_interval])", "{{Hostname}} gpu {{gpu}}")],
         unit="ops", interval="30s")
    d.ts("Remapped rows and remap failures", [
            (f"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{{{G}}}", "{{Hostname}} gpu {{gpu}} uncorrectable"),
            (f"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS{{{G}}}", "{{Hostname}} gpu {{gpu}} correctable"),
            (f"DCGM_FI_DEV_ROW_REMAP_FAILURE{{{G}}}", "{{Hostname}} gpu {{gpu}} remap failed")],
         interval="30s")
    d.write('gpu-fleet.json')

    # ---------------------------------------------------------------- nodes
    d = Dash("tessera-nodes", "Nodes (node-exporter)", ["tessera", "node-exporter"],
             "Hosts via node-exporter. Uses the recording rules of deploy/rules/node.yml where they exist.")
    d.var("instance", "label_values(node_uname_info, instance)", all_value=".*")
    I = 'instance=~"$instance"'
    d.row("Fleet (recording rules, cluster:*)")
    d.stat("CPU busy", "cluster:node_cpu_utilisation:ratio", unit="percentunit", w=6, interval="1m")
    d.stat("Memory used", "cluster:node_memory_utilisation:ratio", unit="percentunit", w=6, interval="1m")
    d.stat("Network receive", "sum(cluster:node_network_receive_bytes_excluding_lo:rate5m)", unit="Bps", w=6, interval="1m")
    d.stat("Network transmit", "sum(cluster:node_network_transmit_bytes_excluding_lo:rate5m)", unit="Bps", w=6, interval="1m")

    d.row("CPU and load ($instance)")
    d.ts("CPU utilisation", [(f"instance:node_cpu_utilisation:rate5m{{{I}}}", "{{instance}}")],
         unit="percentunit", mn=0, mx=1, interval="30s", desc="1 - mean idle rate over all CPUs (5m).")
    d.ts("CPU time by mode (share of all CPUs)", [(
            f'sum by (instance, mode) (rate(node_cpu_seconds_total{{{I}, mode!="idle"}}[$__rate_interval]))'
            f' / on (instance) group_left () count by (instance) (node_cpu_seconds_total{{{I}, mode="idle"}})',
            "{{instance}} {{mode}}")],
         unit="percentunit", mn=0, stack=True)
    d.ts("Load average", [(f"node_load1{{{I}}}", "{{instance}} 1m"), (f"node_load5{{{I}}}", "{{instance}} 5m"),
                          (f"node_load15{{{I}}}", "{{instance}} 15m")])
    d.ts("1m load per CPU", [(f"instance:node_load1_per_cpu:ratio{{{I}}}", "{{instance}}")], interval="30s",
         desc="Above 1: runnable tasks are queueing for CPU.")

    d.row("Memory ($instance)")
    d.ts("Memory utilisation", [(f"instance:node_memory_utilisation:ratio{{{I}}}", "{{instance}}")],
         unit="percentunit", mn=0, mx=1, interval="30s", desc="1 - MemAvailable / MemTotal.")
    d.ts("Memory available and total", [(f"node_memory_MemAvailable_bytes{{{I}}}", "{{instance}} available"),
                                        (f"node_memory_MemTotal_bytes{{{I}}}", "{{instance}} total")], unit="bytes")

    d.row("Network ($instance)")
    d.ts("Network traffic (all but lo)", [
            (f"instance:node_network_receive_bytes_excluding_lo:rate5m{{{I}}}", "{{instance}} receive"),
            (f"instance:node_network_transmit_bytes_excluding_lo:rate5m{{{I}}}", "{{instance}} transmit")],
         unit="Bps", interval="30s")
    d.ts("Network traffic by device", [
            (f'rate(node_network_receive_bytes_total{{{I}, device!="lo"}}[$__rate_interval])', "{{instance}} {{device}} receive"),
            (f'rate(node_network_transmit_bytes_total{{{I}, device!="lo"}}[$__rate_interval])', "{{instance}} {{device}} transmit")],
         unit="Bps")
    d.ts("Dropped packets (all but lo)", [
            (f"instance:node_network_receive_drop_excluding_lo:rate5m{{{I}}}", "{{instance}} receive"),
            (f"instance:node_network_transmit_drop_excluding_lo:rate5m{{{I}}}", "{{instance}} transmit")],
         unit="pps", interval="30s")

    d.row("Disk ($instance)")
    d.ts("Disk throughput", [(f"instance:node_disk_read_bytes:rate5m{{{I}}}", "{{instance}} read"),
                             (f"instance:node_disk_written_bytes:rate5m{{{I}}}", "{{instance}} written")],
         unit="Bps", interval="30s")
    d.ts("Disk busy time by device", [(f"instance_device:node_disk_io_time_seconds:rate5m{{{I}}}", "{{instance}} {{device}}")],
         unit="percentunit", mn=0, mx=1, interval="30s")
    d.ts("Filesystem space used", [(
            f'1 - node_filesystem_avail_bytes{{{I}, fstype!~"tmpfs|overlay|squashfs|ramfs"}}'
            f' / node_filesystem_size_bytes{{{I}, fstype!~"tmpfs|overlay|squashfs|ramfs"}}',
            "{{instance}} {{mountpoint}}")],
         unit="percentunit", mn=0, mx=1)
    d.write('nodes.json')

    # ---------------------------------------------------------------- tessera
    d = Dash("tessera-self", "Tessera", ["tessera"],
             "Tessera's own /metrics: ingest, head, HTTP API, process, WAL, queries and rules.")
    d.var("job", "label_values(tessera_ready, job)", multi=False, include_all=False)
    d.var("instance", 'label_values(tessera_ready{job=~"$job"}, instance)')
    S = 'job=~"$job", instance=~"$instance"'
    d.row("Overview")
    d.stat("Ready replicas", f"sum(tessera_ready{{{S}}})", desc="tessera_ready is 0 while the WAL replays.")
    d.stat("Head series", f"sum(tessera_head_series{{{S}}})")
    d.stat("Samples appended /s", f"sum(rate(tessera_ingest_samples_appended_total{{{S}}}[$__rate_interval]))", unit="ops")
    d.stat("Samples rejected /s", f"sum(rate(tessera_ingest_samples_rejected_total{{{S}}}[$__rate_interval]))", unit="ops",
           thresholds=[(1, "orange")])
    d.stat("CPU budget (cores)", f"sum(tessera_cpu_budget_cores{{{S}}})",
           desc="From --cpus or the cgroup CPU quota; sizes every thread pool.")
    d.stat("Resident memory", f"sum(process_resident_memory_bytes{{{S}}})", unit="bytes")

    d.row("Ingest")
    d.ts("Samples appended", [(f"sum by (instance) (rate(tessera_ingest_samples_appended_total{{{S}}}[$__rate_interval]))", "{{instance}}")], unit="ops")
    d.ts("Series created", [(f"sum by (instance) (rate(tessera_ingest_series_created_total{{{S}}}[$__rate_interval]))", "{{instance}}")], unit="ops",
         desc="New series per second: sustained high values mean label churn.")
    d.ts("Samples rejected by reason", [(f"sum by (instance, reason) (rate(tessera_ingest_samples_rejected_total{{{S}}}[$__rate_interval]))", "{{instance}} {{reason}}")], unit="ops")
    d.ts("Series rejected by reason", [(f"sum by (instance, reason) (rate(tessera_ingest_series_rejected_total{{{S}}}[$__rate_interval]))", "{{instance}} {{reason}}")], unit="ops")
    d.ts("Write requests refused by reason", [(f"sum by (instance, reason) (rate(tessera_ingest_requests_refused_total{{{S}}}[$__rate_interval]))", "{{instance}} {{reason}}")],
         unit="reqps", desc="overloaded: 503 + Retry-After (raise --ingest.max-inflight or add CPU); too_large: 413 (lower the writers' max_samples_per_send).")

    d.row("Head")
    d.ts("Head series", [(f"sum by (instance) (tessera_head_series{{{S}}})", "{{instance}}")])
    d.ts("Head memory", [(f"sum by (instance) (tessera_head_memory_bytes{{{S}}})", "{{instance}}")], unit="bytes")
    d.ts("Head memory per series", [(f"sum by (instance) (tessera_head_memory_bytes{{{S}}}) / sum by (instance) (tessera_head_series{{{S}}})", "{{instance}}")], unit="bytes")
    d.ts("Shard balance (largest shard / mean shard)", [(f"max by (instance) (tessera_head_series{{{S}}}) / avg by (instance) (tessera_head_series{{{S}}})", "{{instance}}")],
         desc="1 is perfectly even; series are spread over shards by a hash of their labels.")

    d.row("HTTP API")
    d.ts("Requests by handler", [(f"sum by (handler) (rate(tessera_http_requests_total{{{S}}}[$__rate_interval]))", "{{handler}}")], unit="reqps")
    d.ts("Non-2xx responses by handler and code", [(f'sum by (handler, code) (rate(tessera_http_requests_total{{{S}, code!~"2.."}}[$__rate_interval]))', "{{handler}} {{code}}")], unit="reqps")
    d.ts("Latency p99 by handler", [(f"histogram_quantile(0.99, sum by (handler, le) (rate(tessera_http_request_duration_seconds_bucket{{{S}}}[$__rate_interval])))", "{{handler}}")], unit="s")
    d.ts("Latency p50 by handler", [(f"histogram_quantile(0.5, sum by (handler, le) (rate(tessera_http_request_duration_seconds_bucket{{{S}}}[$__rate_interval])))", "{{handler}}")], unit="s")

    d.row("Process")
    d.ts("CPU used vs budget", [(f"sum by (instance) (rate(process_cpu_seconds_total{{{S}}}[$__rate_interval]))", "{{instance}} used"),
                                (f"sum by (instance) (tessera_cpu_budget_cores{{{S}}})", "{{instance}} budget")], unit="short",
         desc="Cores. Used above budget means pools are oversized for the CPU limit (throttling).")
    d.ts("Resident memory vs head memory", [(f"sum by (instance) (process_resident_memory_bytes{{{S}}})", "{{instance}} RSS"),
                                            (f"sum by (instance) (tessera_head_memory_bytes{{{S}}})", "{{instance}} head")], unit="bytes")
    d.ts("Open file descriptors", [(f"sum by (instance) (process_open_fds{{{S}}})", "{{instance}}")])
    d.ts("Ready", [(f"tessera_ready{{{S}}}", "{{instance}}")], mn=0, mx=1)

    d.row("WAL and replay")
    d.stat("Last WAL replay", f"max(tessera_wal_replay_duration_seconds{{{S}}})", unit="s",
           desc="Wall time of the start-up replay (0 while running or when there was nothing to replay).")
    d.stat("Samples replayed", f"sum(tessera_wal_replay_samples_total{{{S}}})")
    d.ts("WAL replay progress", [(f"sum by (instance) (tessera_wal_replay_bytes_done{{{S}}})", "{{instance}} replayed"),
                                 (f"sum by (instance) (tessera_wal_replay_bytes_total{{{S}}})", "{{instance}} to replay")],
         unit="bytes", w=16, desc="While a replica replays, /-/ready is 503 and tessera_ready is 0.")
    d.ts("Current WAL segment by shard", [(f"tessera_wal_segment_current{{{S}}}", "{{instance}} shard {{shard}}")],
         desc="Segment files are cut at --wal.segment-size; the number grows with the WAL (no retention yet).")

    d.row("Queries and rules")
    d.ts("Read latency p99 by endpoint", [(f"histogram_quantile(0.99, sum by (endpoint, le) (rate(tessera_read_duration_seconds_bucket{{{S}}}[$__rate_interval])))", "{{endpoint}}")],
         unit="s", desc="Admitted queries and metadata calls, from admission to the last byte.")
    d.ts("Reads running and queued", [(f"sum by (instance) (tessera_query_inflight{{{S}}})", "{{instance}} running"),
                                      (f"sum by (instance) (tessera_query_queue_length{{{S}}})", "{{instance}} queued")],
         desc="Bounded by --query.max-concurrency and --query.max-queue.")
    d.ts("Limit hits by flag", [(f"sum by (instance, flag) (rate(tessera_query_limit_hits_total{{{S}}}[$__rate_interval]))", "{{instance}} {{flag}}")],
         unit="reqps", desc="Reads refused or stopped by a limit (--api.max-series, --query.max-samples, ...). Empty until the first hit.")
    d.ts("Cancelled reads by reason", [(f"sum by (instance, endpoint, reason) (rate(tessera_query_cancellations_total{{{S}}}[$__rate_interval]))", "{{endpoint}} {{reason}}")],
         unit="reqps", desc="client: the client went away; timeout; budget. Empty until the first cancellation.")
    d.ts("Rule group evaluation time", [(f"max by (rule_group) (tessera_rule_group_last_duration_seconds{{{S}}})", "{{rule_group}}")],
         unit="s", desc="Compare with tessera_rule_group_interval_seconds: a group slower than its interval misses iterations.")
    d.ts("Rule failures and missed iterations", [
            (f"sum by (rule_group) (rate(tessera_rule_evaluation_failures_total{{{S}}}[$__rate_interval]))", "{{rule_group}} failed"),
            (f"sum by (rule_group) (rate(tessera_rule_group_iterations_missed_total{{{S}}}[$__rate_interval]))", "{{rule_group}} missed")],
         unit="ops")
    d.write('tessera.json')


def main():
    build()
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards")
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in sorted(OUTPUTS.items()):
        path = os.path.join(out_dir, name)
        current = open(path).read() if os.path.exists(path) else None
        if current == text:
            continue
        if check:
            stale.append(name)
        else:
            with open(path, "w") as f:
                f.write(text)
            print(f"wrote {path}")
    if stale:
        print("stale (run python3 deploy/grafana/generate.py): " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
