/*  cask.js - the dashboard's code, shared by its three pages and served at
    /static/cask.js. Each page loads it and calls one function:

        cask.statusPage ()    /status: summary numbers, the task stream,
                              progress per function, a compact workers table
        cask.workersPage ()   /workers: the full workers table
        cask.graphPage ()     /graph: the current task graph

    Plain JavaScript, no framework and nothing fetched but the broker's own
    JSON API (/api/status, /api/workers, /api/tasks, /api/task-stream): the
    dashboard works offline. The API is polled; a request is never sent
    while the previous one of the same page is still out, so a slow broker
    is not flooded. Times on screen come from the broker's clock (every
    document's "time"), never the browser's, so a skewed laptop still
    draws the task stream right.

    Element ids the integration test (tests/test_dashboard.sh) reads:
    nworkers, nthreads, ntasks, nprocessing, nmemory, nerred, ndone, nbars
    (task bars drawn in the stream's window), ngraph (nodes drawn); the
    workers tables have one tr.worker-row per worker.
*/
"use strict";

const cask = (function () {

    //  -----------------------------------------------------------------
    //  Small helpers

    const POLL_MS = 500;            //  status page and workers page
    const GRAPH_POLL_MS = 1500;     //  the graph is bigger and changes less
    const STREAM_WINDOW_S = 15;     //  seconds of task stream on screen
    const STREAM_OVERLAP_S = 2;     //  asked again each poll: late reports
    const STREAM_LIMIT = 5000;      //  tasks of the stream a poll, at most

    //  Colours of functions: Tableau's, without its reds (red is for
    //  transfers), greys (waiting) and black (errors).
    const PALETTE = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
        "#17becf", "#bcbd22", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5",
        "#c49c94", "#f7b6d2", "#9edae5", "#dbdb8d"
    ];
    const TRANSFER = "#d62728";
    const ERRED = "#111111";
    const WAITING = "#cfd4d9";
    const STATE_COLOURS = {
        waiting: "#b9c0c7",
        processing: "#2ca02c",
        memory: "#1f77b4",
        erred: ERRED,
        released: "#eef0f2"
    };

    const $ = (id) => document.getElementById (id);

    function setText (id, text)
    {
        const el = typeof id === "string" ? $(id) : id;
        text = String (text);
        if (el && el.textContent !== text)
            el.textContent = text;
    }

    function el (tag, props, children)
    {
        const node = document.createElement (tag);
        for (const [name, value] of Object.entries (props || {})) {
            if (name === "class")
                node.className = value;
            else
            if (name === "text")
                node.textContent = value;
            else
            if (name === "style")
                Object.assign (node.style, value);
            else
                node.setAttribute (name, value);
        }
        for (const child of children || [])
            node.append (child);
        return node;
    }

    function fmtBytes (n)
    {
        if (!n || n < 0)
            return "0 B";
        const units = ["B", "KiB", "MiB", "GiB", "TiB"];
        let unit = 0;
        while (n >= 1024 && unit < units.length - 1) {
            n /= 1024;
            unit++;
        }
        return (unit === 0 || n >= 100 ? n.toFixed (0) : n.toFixed (1)) + " " + units [unit];
    }

    function fmtSeconds (s)
    {
        if (s < 0.001)
            return (s * 1e6).toFixed (0) + " us";
        if (s < 1)
            return (s * 1000).toFixed (s < 0.01 ? 1 : 0) + " ms";
        if (s < 120)
            return s.toFixed (s < 10 ? 2 : 1) + " s";
        if (s < 7200)
            return (s / 60).toFixed (1) + " min";
        return (s / 3600).toFixed (1) + " h";
    }

    function fmtCount (n)
    {
        return Number (n || 0).toLocaleString ("en-US");
    }

    //  Colour of a function: by its place in the broker's list of functions
    //  (registration order, the same on every page and every poll), else
    //  by a hash of its name.
    let functionOrder = new Map ();

    function learnFunctions (names)
    {
        if (!Array.isArray (names))
            return;
        names.forEach ((name, index) => {
            if (!functionOrder.has (name))
                functionOrder.set (name, index);
        });
    }

    function funcColour (name)
    {
        let index = functionOrder.get (name);
        if (index === undefined) {
            index = 0;
            for (let i = 0; i < name.length; i++)
                index = (index * 31 + name.charCodeAt (i)) >>> 0;
        }
        return PALETTE [index % PALETTE.length];
    }

    async function getJSON (path)
    {
        const response = await fetch (path, { cache: "no-store" });
        if (!response.ok)
            throw new Error (path + ": HTTP " + response.status);
        return response.json ();
    }

    //  The broker's state in the top bar
    function connected (ok, message)
    {
        const conn = $("conn");
        if (!conn)
            return;
        conn.className = "conn " + (ok ? "ok" : "down");
        setText (conn, ok ? "live" : "broker unreachable" + (message ? ": " + message : ""));
    }

    //  Calls step () every ms milliseconds, never two at once.
    function poll (step, ms)
    {
        async function loop ()
        {
            try {
                await step ();
                connected (true);
            }
            catch (error) {
                connected (false, error && error.message);
                console.error (error);
            }
            setTimeout (loop, ms);
        }
        loop ();
    }

    //  Sizes a canvas to the given CSS height, and width (else the width
    //  its box has), in device pixels (sharp on high-DPI screens);
    //  returns its 2D context, scaled so that drawing is in CSS pixels.
    function fitCanvas (canvas, cssHeight, cssWidth)
    {
        const ratio = window.devicePixelRatio || 1;
        canvas.style.width = cssWidth ? cssWidth + "px" : "";
        const width = cssWidth || canvas.clientWidth || canvas.parentNode.clientWidth || 800;
        canvas.style.height = cssHeight + "px";
        if (canvas.width !== Math.round (width * ratio)
        ||  canvas.height !== Math.round (cssHeight * ratio)) {
            canvas.width = Math.round (width * ratio);
            canvas.height = Math.round (cssHeight * ratio);
        }
        const ctx = canvas.getContext ("2d");
        ctx.setTransform (ratio, 0, 0, ratio, 0, 0);
        ctx.clearRect (0, 0, width, cssHeight);
        return { ctx, width, height: cssHeight };
    }

    //  A hover box that follows the pointer over a canvas; find (x, y)
    //  returns the text to show at that point (CSS pixels), or null.
    function hover (canvas, find)
    {
        const tip = $("tooltip");
        if (!tip)
            return;
        canvas.addEventListener ("mousemove", (event) => {
            const box = canvas.getBoundingClientRect ();
            const text = find (event.clientX - box.left, event.clientY - box.top);
            if (!text) {
                tip.hidden = true;
                return;
            }
            tip.textContent = text;
            tip.hidden = false;
            const x = Math.min (event.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
            tip.style.left = x + "px";
            tip.style.top = (event.clientY + 14) + "px";
        });
        canvas.addEventListener ("mouseleave", () => { tip.hidden = true; });
    }

    function legend (container, items)
    {
        container.replaceChildren (...items.map (([colour, label]) =>
            el ("span", {}, [el ("span", { class: "swatch", style: { background: colour } }), label])));
    }

    //  -----------------------------------------------------------------
    //  Workers tables (compact on /status, full on /workers)

    //  A bar in a cell: value of max, warning past high, alarm past over
    function mini (value, max, high, over)
    {
        const share = max > 0 ? Math.min (1, value / max) : 0;
        const fill = el ("span", { style: { width: (share * 100).toFixed (1) + "%" } });
        if (share >= over)
            fill.className = "over";
        else
        if (share >= high)
            fill.className = "high";
        return el ("span", { class: "mini" }, [fill]);
    }

    const WORKER_COLUMNS = {
        name:     { title: "name", cell: (w) => w.name || "" },
        id:       { title: "id", num: true, cell: (w) => String (w.id) },
        endpoint: { title: "endpoint", cell: (w) => w.endpoint || "" },
        threads:  { title: "threads", num: true, cell: (w) => String (w.nthreads) },
        rss:      { title: "memory (rss)", num: true, cell: (w) => w.memory_limit > 0
                        ? [mini (w.rss_bytes, w.memory_limit, 0.6, 0.8), fmtBytes (w.rss_bytes)]
                        : fmtBytes (w.rss_bytes) },
        limit:    { title: "memory limit", num: true,
                    cell: (w) => w.memory_limit > 0 ? fmtBytes (w.memory_limit) : "none" },
        held:     { title: "cached", num: true, cell: (w) => fmtBytes (w.bytes_held) },
        spilled:  { title: "spilled", num: true, cell: (w) => fmtBytes (w.spilled_bytes) },
        inflight: { title: "in flight", num: true, cell: (w) => fmtCount (w.inflight) },
        done:     { title: "done", num: true, cell: (w) => fmtCount (w.tasks_done) },
        cpu:      { title: "CPU", num: true, cell: (w) =>
                        [mini (w.cpu, 100 * Math.max (1, w.nthreads), 2, 2), Math.round (w.cpu) + " %"] },
        paused:   { title: "paused", cell: (w) => w.paused ? el ("span", { class: "tag", text: "paused" }) : "" },
        resources: { title: "resources", cell: (w) => Object.entries (w.resources || {})
                        .map (([name, amount]) => name + "=" + amount).join (", ") },
        seen:     { title: "last seen", num: true, cell: (w) => fmtSeconds (w.last_seen || 0) + " ago" }
    };

    //  Fills the table's tbody with one tr.worker-row per worker, in the
    //  order of their ids, with the columns named.
    function workersTable (table, workers, columns)
    {
        const head = table.tHead || table.createTHead ();
        if (!head.rows.length)
            head.append (el ("tr", {}, columns.map ((name) =>
                el ("th", { class: WORKER_COLUMNS [name].num ? "num" : "" , text: WORKER_COLUMNS [name].title }))));
        const body = table.tBodies [0] || table.createTBody ();
        const rows = [...workers].sort ((a, b) => a.id - b.id).map ((worker) => {
            const row = el ("tr", { class: "worker-row" + (worker.paused ? " paused" : ""),
                                    "data-id": worker.id });
            for (const name of columns) {
                const column = WORKER_COLUMNS [name];
                const content = column.cell (worker);
                row.append (el ("td", { class: column.num ? "num" : "" },
                                Array.isArray (content) ? content : [content]));
            }
            return row;
        });
        if (!rows.length)
            rows.push (el ("tr", {}, [el ("td", { class: "empty", colspan: columns.length,
                                                  text: "no worker connected" })]));
        body.replaceChildren (...rows);
    }

    //  -----------------------------------------------------------------
    //  /status

    //  Progress per function: done, processing, waiting, erred stacked
    function progressBars (container, progress)
    {
        const rows = [...progress]
            .sort ((a, b) => (functionOrder.get (a.function) ?? 1e9) - (functionOrder.get (b.function) ?? 1e9)
                          || a.function.localeCompare (b.function))
            .map ((p) => {
                const total = p.done + p.processing + p.waiting + p.erred;
                const colour = funcColour (p.function);
                const part = (count, cls, style, what) => el ("span", {
                    class: cls,
                    title: fmtCount (count) + " " + what,
                    style: Object.assign ({ width: (total ? 100 * count / total : 0) + "%" }, style)
                });
                const count = fmtCount (p.done) + " / " + fmtCount (total)
                            + (p.erred ? "  (" + fmtCount (p.erred) + " erred)" : "");
                return el ("div", { class: "progress-row", "data-function": p.function }, [
                    el ("span", { class: "name", title: p.function, text: p.function }),
                    el ("div", { class: "track" }, [
                        part (p.done, "done", { background: colour }, "done"),
                        part (p.processing, "processing", { background: colour, opacity: 0.45 }, "processing"),
                        part (p.waiting, "waiting", {}, "waiting"),
                        part (p.erred, "erred", {}, "erred")
                    ]),
                    el ("span", { class: "count", text: count,
                                  title: fmtCount (p.done) + " done, " + fmtCount (p.processing)
                                       + " processing, " + fmtCount (p.waiting) + " waiting, "
                                       + fmtCount (p.erred) + " erred" })
                ]);
            });
        if (!rows.length)
            rows.push (el ("div", { class: "empty", text: "no task yet" }));
        container.replaceChildren (...rows);
    }

    //  The task stream: a row per worker thread, a bar per task from
    //  start to stop in its function's colour (black if it erred), the
    //  fetch of its inputs (transfer_start..transfer_stop) in red; the
    //  last STREAM_WINDOW_S seconds of the broker's clock.
    function TaskStream (canvas)
    {
        this.canvas = canvas;
        this.tasks = [];            //  in the window, in arrival order
        this.seen = new Set ();     //  their ids, not to draw one twice
        this.since = 0;             //  asked of the broker next
        this.now = 0;               //  the broker's clock at the last poll
        this.workers = [];
        this.layout = null;         //  what the last draw put where
        hover (canvas, (x, y) => this.find (x, y));
    }

    TaskStream.prototype.id = (task) => task.key + "|" + task.worker + "|" + task.start;

    TaskStream.prototype.add = function (doc)
    {
        this.now = doc.time;
        for (const task of doc.tasks || []) {
            const id = this.id (task);
            if (!this.seen.has (id)) {
                this.seen.add (id);
                this.tasks.push (task);
            }
        }
        //  Forget what slid out of the window
        const oldest = this.now - STREAM_WINDOW_S - STREAM_OVERLAP_S;
        if (this.tasks.length && this.tasks.some ((task) => task.stop < oldest)) {
            this.tasks = this.tasks.filter ((task) => task.stop >= oldest);
            this.seen = new Set (this.tasks.map (this.id));
        }
        this.since = this.now - STREAM_OVERLAP_S;
    };

    //  The rows: each connected worker's threads, then threads of workers
    //  gone that still have bars in the window.
    TaskStream.prototype.rows = function ()
    {
        const rows = [], index = new Map ();
        const add = (worker, thread, label) => {
            const key = worker + ":" + thread;
            if (!index.has (key)) {
                index.set (key, rows.length);
                rows.push ({ worker, thread, label });
            }
        };
        for (const w of [...this.workers].sort ((a, b) => a.id - b.id))
            for (let t = 0; t < Math.max (1, w.nthreads); t++)
                add (w.id, t, (w.name || "worker " + w.id) + " · " + t);
        const gone = this.tasks.filter ((task) => !index.has (task.worker + ":" + task.thread))
                               .sort ((a, b) => a.worker - b.worker || a.thread - b.thread);
        for (const task of gone)
            add (task.worker, task.thread, (task.worker_name || "worker " + task.worker)
                                           + " · " + task.thread + " (gone)");
        return { rows, index };
    };

    TaskStream.prototype.draw = function ()
    {
        const { rows, index } = this.rows ();
        const rowHeight = Math.max (4, Math.min (30, Math.floor (360 / Math.max (1, rows.length))));
        const labelWidth = rowHeight >= 9 ? 150 : 110;
        const axis = 22;
        const { ctx, width, height } = fitCanvas (this.canvas, Math.max (60, rows.length * rowHeight + axis + 4));
        const plotWidth = Math.max (10, width - labelWidth - 8);
        const right = this.now, left = right - STREAM_WINDOW_S;
        const X = (t) => labelWidth + (t - left) / STREAM_WINDOW_S * plotWidth;

        //  Row backgrounds and labels
        ctx.font = "11px system-ui, sans-serif";
        ctx.textBaseline = "middle";
        rows.forEach ((row, i) => {
            const y = i * rowHeight;
            if (i % 2 === 0) {
                ctx.fillStyle = "#f7f8fa";
                ctx.fillRect (labelWidth, y, plotWidth, rowHeight);
            }
            const first = i === 0 || rows [i - 1].worker !== row.worker;
            if (rowHeight >= 9 || first) {
                ctx.fillStyle = "#6b7580";
                const label = rowHeight >= 9 ? row.label : row.label.replace (/ · \d+/, "");
                ctx.fillText (label, 4, y + (rowHeight >= 9 ? rowHeight / 2 : 6), labelWidth - 8);
            }
            if (first && i > 0) {
                ctx.fillStyle = "#d5dae0";
                ctx.fillRect (0, y, width, 1);
            }
        });

        //  Bars: transfers first, tasks over them
        const pad = rowHeight >= 8 ? 1 : 0;
        const placed = [];
        let bars = 0;
        for (const task of this.tasks) {
            const row = index.get (task.worker + ":" + task.thread);
            if (row === undefined || task.stop < left)
                continue;
            const y = row * rowHeight + pad, h = rowHeight - 2 * pad;
            if (task.transfer_stop > 0 && task.transfer_stop >= left) {
                const x0 = Math.max (labelWidth, X (task.transfer_start));
                ctx.fillStyle = TRANSFER;
                //  2 px at least: a fetch of a few ms must still show
                ctx.fillRect (x0, y, Math.max (2, X (task.transfer_stop) - x0), h);
            }
            const x0 = Math.max (labelWidth, X (task.start));
            let w = X (task.stop) - x0;
            if (w > 4)
                w -= 1;             //  a hair between tasks that follow each other
            w = Math.max (2, w);    //  a task of a millisecond still shows
            ctx.fillStyle = task.status === "OK" ? funcColour (task.function) : ERRED;
            ctx.fillRect (x0, y, w, h);
            placed.push ({ x0: Math.min (x0, task.transfer_stop > 0 ? X (task.transfer_start) : x0),
                           x1: x0 + w, row, task });
            bars++;
        }

        //  Time axis: a tick every 1, 2 or 5 seconds
        const axisY = rows.length * rowHeight + 2;
        ctx.fillStyle = "#c3c9cf";
        ctx.fillRect (labelWidth, axisY, plotWidth, 1);
        const step = plotWidth / STREAM_WINDOW_S > 60 ? 1 : plotWidth / STREAM_WINDOW_S > 25 ? 2 : 5;
        ctx.fillStyle = "#6b7580";
        ctx.textBaseline = "top";
        ctx.textAlign = "center";
        for (let s = 0; s <= STREAM_WINDOW_S; s += step) {
            const x = X (right - s);
            ctx.fillRect (x, axisY, 1, 4);
            ctx.fillText (s === 0 ? "now" : "-" + s + " s", Math.min (x, width - 14), axisY + 6);
        }
        ctx.textAlign = "left";
        if (!rows.length) {
            ctx.textBaseline = "middle";
            ctx.fillText ("no worker connected", labelWidth + 10, 20);
        }
        this.layout = { placed, rowHeight };
        this.canvas.dataset.bars = bars;
        setText ("nbars", bars);

        //  Legend: the functions in the window
        const names = [...new Set (this.tasks.map ((task) => task.function))]
            .sort ((a, b) => (functionOrder.get (a) ?? 1e9) - (functionOrder.get (b) ?? 1e9));
        const items = names.map ((name) => [funcColour (name), name]);
        items.push ([TRANSFER, "transfer"], [ERRED, "error"]);
        const box = $("stream-legend");
        if (box && box.dataset.names !== names.join ("\n")) {
            box.dataset.names = names.join ("\n");
            legend (box, items);
        }
    };

    TaskStream.prototype.find = function (x, y)
    {
        if (!this.layout)
            return null;
        const row = Math.floor (y / this.layout.rowHeight);
        let hit = null;
        for (const bar of this.layout.placed)
            if (bar.row === row && x >= bar.x0 - 1 && x <= bar.x1 + 1)
                hit = bar.task;
        if (!hit)
            return null;
        let text = hit.function + "  " + hit.key
                 + "\n" + (hit.worker_name || "worker " + hit.worker) + ", thread " + hit.thread
                 + "\nran " + fmtSeconds (hit.stop - hit.start)
                 + ", " + fmtSeconds (this.now - hit.stop) + " ago"
                 + "\nresult " + fmtBytes (hit.nbytes);
        if (hit.transfer_stop > 0)
            text += "\ninputs fetched in " + fmtSeconds (hit.transfer_stop - hit.transfer_start);
        if (hit.status !== "OK")
            text += "\nstatus: " + hit.status;
        return text;
    };

    function statusPage ()
    {
        const stream = new TaskStream ($("stream"));
        const table = $("workers");
        window.addEventListener ("resize", () => stream.draw ());
        poll (async () => {
            //  Both at once; the stream since what was seen last (past
            //  STREAM_LIMIT tasks a poll, the broker keeps the newest: at
            //  that rate a screen could not show them all anyway)
            const streamPath = "/api/task-stream?since=" + stream.since.toFixed (3)
                             + "&limit=" + STREAM_LIMIT;
            const [status, tasks] = await Promise.all ([getJSON ("/api/status"), getJSON (streamPath)]);
            learnFunctions (status.functions);
            const workers = status.workers || [];
            const counts = status.tasks || {};
            const progress = status.progress || [];
            setText ("nworkers", workers.length);
            setText ("nthreads", workers.reduce ((sum, w) => sum + (w.nthreads || 0), 0));
            setText ("ntasks", counts.total || 0);
            setText ("nwaiting", counts.waiting || 0);
            setText ("nprocessing", counts.processing || 0);
            setText ("nmemory", counts.memory || 0);
            setText ("nerred", counts.erred || 0);
            $("nerred").parentNode.classList.toggle ("erred", (counts.erred || 0) > 0);
            setText ("ndone", progress.reduce ((sum, p) => sum + (p.done || 0), 0));
            setText ("nclients", status.clients || 0);
            setText ("held", fmtBytes (workers.reduce ((sum, w) => sum + (w.bytes_held || 0), 0)));
            setText ("uptime", fmtSeconds (status.uptime || 0));
            setText ("broker-rss", fmtBytes (status.rss_bytes));
            stream.workers = workers;
            stream.add (tasks);
            stream.draw ();
            progressBars ($("progress"), progress);
            workersTable (table, workers, ["name", "threads", "inflight", "done", "cpu", "rss", "held"]);
        }, POLL_MS);
    }

    //  -----------------------------------------------------------------
    //  /workers

    function workersPage ()
    {
        poll (async () => {
            const doc = await getJSON ("/api/workers");
            const workers = doc.workers || [];
            const sum = (field) => workers.reduce ((total, w) => total + (w [field] || 0), 0);
            setText ("nworkers", workers.length);
            setText ("nthreads", sum ("nthreads"));
            setText ("rss", fmtBytes (sum ("rss_bytes")));
            setText ("held", fmtBytes (sum ("bytes_held")));
            setText ("spilled", fmtBytes (sum ("spilled_bytes")));
            setText ("ninflight", sum ("inflight"));
            setText ("ndone", sum ("tasks_done"));
            workersTable ($("workers"), workers,
                          ["name", "id", "endpoint", "threads", "rss", "limit", "held", "spilled",
                           "inflight", "done", "cpu", "paused", "resources", "seen"]);
        }, POLL_MS);
    }

    //  -----------------------------------------------------------------
    //  /graph

    //  Layered layout: a task's layer is the longest path to it from a
    //  task with no dependency listed (Kahn's order, so no recursion on
    //  long chains). Within a layer, tasks sit near the mean height of
    //  their dependencies, so chains run straight; a layer taller than
    //  the canvas wraps into several columns.
    function layoutGraph (tasks, width, maxRows)
    {
        const n = tasks.length;
        const children = Array.from ({ length: n }, () => []);
        const pending = new Array (n).fill (0);
        tasks.forEach ((task, i) => {
            for (const dep of task.deps || [])
                if (dep >= 0 && dep < n && dep !== i) {
                    children [dep].push (i);
                    pending [i]++;
                }
        });
        const depth = new Array (n).fill (0);
        const order = [];
        for (let i = 0; i < n; i++)
            if (pending [i] === 0)
                order.push (i);
        for (let at = 0; at < order.length; at++)
            for (const child of children [order [at]]) {
                depth [child] = Math.max (depth [child], depth [order [at]] + 1);
                if (--pending [child] === 0)
                    order.push (child);
            }
        if (order.length < n)           //  a cycle cannot be; draw it anyway
            for (let i = 0; i < n; i++)
                if (pending [i] > 0)
                    order.push (i);

        const layers = [];
        for (const i of order)
            (layers [depth [i]] = layers [depth [i]] || []).push (i);
        //  Order each layer by the mean height of the dependencies, then
        //  shift it as a block towards them (chains run straight, a
        //  reduction narrows towards its middle). Roots have no
        //  dependency: a first sweep orders them as listed, a second by
        //  the mean height their dependants got in the first, which
        //  uncrosses most edges out of them.
        const tallest = Math.min (maxRows, Math.max (1, ...layers.filter (Boolean).map ((l) => l.length)));
        const x = new Float64Array (n), y = new Float64Array (n);
        let placed = [], columns = 0;       //  [layer, its first column]
        function sweep (rootKey)
        {
            placed = [];
            columns = 0;
            for (const layer of layers) {
                if (!layer)
                    continue;
                const key = new Map (), rooted = new Set ();
                for (const i of layer) {
                    const deps = (tasks [i].deps || []).filter ((d) => d >= 0 && d < n && d !== i);
                    key.set (i, deps.length ? deps.reduce ((s, d) => s + y [d], 0) / deps.length : rootKey (i));
                    if (!deps.length)
                        rooted.add (i);
                }
                layer.sort ((a, b) => key.get (a) - key.get (b) || a - b);
                //  the median of how far each task is below its dependencies
                const below = [];
                layer.forEach ((i, at) => {
                    if (!rooted.has (i))
                        below.push (key.get (i) - at);
                });
                below.sort ((a, b) => a - b);
                const shift = layer.length > maxRows || !below.length ? 0
                            : Math.max (0, Math.min (tallest - layer.length, below [below.length >> 1]));
                layer.forEach ((i, at) => { y [i] = at % maxRows + shift; });
                placed.push ([layer, columns]);
                columns += Math.ceil (layer.length / maxRows);
            }
        }
        sweep ((i) => i);
        const first = Float64Array.from (y);
        sweep ((i) => children [i].length
                      ? children [i].reduce ((s, c) => s + first [c], 0) / children [i].length
                      : first [i]);
        //  Columns MIN_COLUMN px apart at least: a long chain makes the
        //  canvas wider than the page, which then scrolls sideways
        //  (up to 16,000 px, far below what browsers allow a canvas)
        const margin = 14, MIN_COLUMN = 8, WIDEST = 16000;
        const colWidth = columns < 2 ? 0
                       : Math.max ((width - 2 * margin) / (columns - 1),
                                   Math.min (MIN_COLUMN, (WIDEST - 2 * margin) / (columns - 1)));
        for (const [layer, first] of placed)
            layer.forEach ((i, at) => {
                const column = first + Math.floor (at / maxRows);
                x [i] = columns > 1 ? margin + column * colWidth : width / 2;
            });
        return { x, y, columns, tallest, colWidth, layers: layers.filter (Boolean).length,
                 width: columns > 1 ? 2 * margin + (columns - 1) * colWidth : width };
    }

    function graphPage ()
    {
        const canvas = $("graph");
        let doc = null, drawn = null;

        function draw ()
        {
            if (!doc)
                return;
            const tasks = doc.tasks || [];
            const width = canvas.parentNode.clientWidth || 1000;
            const maxHeight = Math.max (300, window.innerHeight - 240);
            const minSpacing = 5;
            const maxRows = Math.max (1, Math.floor ((maxHeight - 30) / minSpacing));
            const layout = layoutGraph (tasks, width, maxRows);
            const spacing = Math.max (minSpacing, Math.min (26, (maxHeight - 30) / layout.tallest));
            const height = Math.max (120, layout.tallest * spacing + 30);
            const { ctx } = fitCanvas (canvas, height, layout.width > width ? layout.width : null);
            const px = (i) => layout.x [i];
            const py = (i) => 15 + layout.y [i] * spacing + spacing / 2;
            const radius = Math.max (1.5, Math.min (7, spacing * 0.38,
                                                    layout.colWidth ? layout.colWidth * 0.3 : 7));

            //  Edges, one path, under the nodes
            ctx.strokeStyle = "rgba(60, 70, 80, 0.22)";
            ctx.lineWidth = 1;
            ctx.beginPath ();
            tasks.forEach ((task, i) => {
                for (const dep of task.deps || [])
                    if (dep >= 0 && dep < tasks.length && dep !== i) {
                        ctx.moveTo (px (dep), py (dep));
                        ctx.lineTo (px (i), py (i));
                    }
            });
            ctx.stroke ();

            //  Nodes, by state
            const counts = {};
            for (const state of Object.keys (STATE_COLOURS))
                counts [state] = 0;
            tasks.forEach ((task, i) => {
                counts [task.state] = (counts [task.state] || 0) + 1;
                ctx.fillStyle = STATE_COLOURS [task.state] || "#999";
                ctx.beginPath ();
                ctx.arc (px (i), py (i), radius, 0, 2 * Math.PI);
                ctx.fill ();
                if (task.state === "released" && radius > 2) {
                    ctx.strokeStyle = "#9aa3ad";
                    ctx.stroke ();
                }
            });
            if (!tasks.length) {
                ctx.fillStyle = "#6b7580";
                ctx.font = "13px system-ui, sans-serif";
                ctx.fillText ("no task in the graph", 14, 30);
            }
            drawn = { tasks, px, py, radius };

            setText ("ngraph", tasks.length);
            setText ("ntotal", doc.total ?? tasks.length);
            setText ("nlayers", layout.layers);
            const note = $("truncated");
            if (note)
                note.hidden = !doc.truncated;
            legend ($("graph-legend"), Object.keys (STATE_COLOURS).map ((state) =>
                [STATE_COLOURS [state], state + " " + fmtCount (counts [state] || 0)]));
        }

        hover (canvas, (x, y) => {
            if (!drawn)
                return null;
            let best = -1, bestDistance = Math.max (6, drawn.radius + 2) ** 2;
            drawn.tasks.forEach ((task, i) => {
                const distance = (drawn.px (i) - x) ** 2 + (drawn.py (i) - y) ** 2;
                if (distance <= bestDistance) {
                    best = i;
                    bestDistance = distance;
                }
            });
            if (best < 0)
                return null;
            const task = drawn.tasks [best];
            return task.function + "  " + task.key + "\nstate " + task.state
                 + (task.worker ? ", on worker " + task.worker : "")
                 + "\nresult " + fmtBytes (task.nbytes)
                 + (task.priority !== undefined ? ", priority " + task.priority : "")
                 + "\n" + (task.deps || []).length + " dependencies shown";
        });
        window.addEventListener ("resize", draw);
        poll (async () => {
            doc = await getJSON ("/api/tasks?limit=2000");
            draw ();
        }, GRAPH_POLL_MS);
    }

    return { statusPage, workersPage, graphPage, fmtBytes, fmtSeconds };
}) ();
