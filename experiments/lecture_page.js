// The lecture page's script (experiments/lecture_page.py inlines it): draws every figure from the
// data embedded in the page and makes them interactive. No libraries, no network.
"use strict";
(function () {
  const started = performance.now();
  const DATA = JSON.parse(document.getElementById("lecture-data").textContent);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const api = { ready: false, timings: {}, errors: [], decoders: {} };
  window.lecturePage = api;

  // ---------------------------------------------------------------------------------------------
  // Small helpers

  function bytes(b64) {
    const text = atob(b64);
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }
  const f32 = (b64) => new Float32Array(bytes(b64).buffer);

  function num(v, digits = 2) {
    return v.toFixed(digits).replace("-", "\u2212");
  }
  // `digits` significant digits, without trailing zeros (a number too large for them: rounded).
  function sig(v, digits = 3) {
    v = Number(v);
    let text = Math.abs(v) >= Math.pow(10, digits) ? String(Math.round(v)) : v.toPrecision(digits);
    if (text.includes(".") && !text.includes("e")) text = text.replace(/0+$/, "").replace(/\.$/, "");
    return text.replace("-", "\u2212");
  }

  function svg(tag, attrs, parent) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }

  function niceTicks(lo, hi, count = 5) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    let step = Math.pow(10, Math.floor(Math.log10(span / count)));
    const err = span / count / step;
    if (err >= 7.5) step *= 10;
    else if (err >= 3.5) step *= 5;
    else if (err >= 1.5) step *= 2;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return ticks;
  }
  function tickLabel(v) {
    return String(Number(v.toPrecision(6))).replace("-", "\u2212");
  }

  // A canvas drawn at the device's pixel ratio; returns its 2-D context in CSS pixels.
  function hidpi(canvas) {
    const w = Number(canvas.getAttribute("width")), h = Number(canvas.getAttribute("height"));
    const ratio = window.devicePixelRatio || 1;
    canvas.style.width = w + "px";
    canvas.style.height = h + "px";
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return { ctx, w, h, ratio };
  }

  // Axes mapping data bounds [x0, x1, y0, y1] into a w x h box with margins.
  function axes(w, h, bounds, margin = { l: 42, r: 10, t: 10, b: 38 }) {
    const [x0, x1, y0, y1] = bounds;
    const W = w - margin.l - margin.r, H = h - margin.t - margin.b;
    return {
      bounds, margin, W, H,
      x: (v) => margin.l + ((v - x0) / (x1 - x0)) * W,
      y: (v) => margin.t + ((y1 - v) / (y1 - y0)) * H,
      scale: W / (x1 - x0),
      inv: (px, py) => [x0 + ((px - margin.l) / W) * (x1 - x0), y1 - ((py - margin.t) / H) * (y1 - y0)],
      inside: (px, py) => px >= margin.l && px <= margin.l + W && py >= margin.t && py <= margin.t + H,
    };
  }

  // Square bounds (equal units on both axes) holding [x0, x1, y0, y1], padded by `pad` of the span.
  function squareBounds([x0, x1, y0, y1], pad = 0.08) {
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    const half = (Math.max(x1 - x0, y1 - y0) / 2) * (1 + pad) || 1;
    return [cx - half, cx + half, cy - half, cy + half];
  }

  function drawFrame(ctx, ax, xlabel, ylabel) {
    const { margin, W, H } = ax;
    const [x0, x1, y0, y1] = ax.bounds;
    ctx.save();
    ctx.strokeStyle = "#555";
    ctx.lineWidth = 1;
    ctx.strokeRect(margin.l + 0.5, margin.t + 0.5, W, H);
    ctx.fillStyle = "#444";
    ctx.font = "11px system-ui, 'DejaVu Sans', sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of niceTicks(x0, x1, 5)) {
      const px = Math.round(ax.x(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(px, margin.t + H);
      ctx.lineTo(px, margin.t + H + 4);
      ctx.stroke();
      ctx.fillText(tickLabel(t), px, margin.t + H + 6);
    }
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of niceTicks(y0, y1, 5)) {
      const py = Math.round(ax.y(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(margin.l - 4, py);
      ctx.lineTo(margin.l, py);
      ctx.stroke();
      ctx.fillText(tickLabel(t), margin.l - 6, py);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.font = "12px system-ui, 'DejaVu Sans', sans-serif";
    ctx.fillText(xlabel, margin.l + W / 2, margin.t + H + 34);
    ctx.translate(12, margin.t + H / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText(ylabel, 0, 0);
    ctx.restore();
  }

  // An image [H, W, C] (values in [0, 1], or bytes when `isBytes`) drawn into ctx at (x, y), size (w, h).
  const scratch = document.createElement("canvas");
  function drawPixels(ctx, pixels, shape, x, y, w, h, isBytes = false, offset = 0) {
    const [H, W, C] = shape;
    if (scratch.width !== W || scratch.height !== H) {
      scratch.width = W;
      scratch.height = H;
    }
    const sctx = scratch.getContext("2d");
    const image = sctx.createImageData(W, H);
    const out = image.data;
    for (let i = 0; i < H * W; i++) {
      for (let ch = 0; ch < 3; ch++) {
        const v = pixels[offset + i * C + (C === 3 ? ch : 0)];
        out[4 * i + ch] = isBytes ? v : Math.round(Math.min(1, Math.max(0, v)) * 255);
      }
      out[4 * i + 3] = 255;
    }
    sctx.putImageData(image, 0, 0);
    ctx.save();
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(scratch, x, y, w, h);
    ctx.restore();
  }

  // ---------------------------------------------------------------------------------------------
  // The decoder: the trained MLP, layer by layer (h = act(h W + b)), as vae_jax.models.layers.Decoder.

  const ACTIVATIONS = {
    relu: (x) => (x > 0 ? x : 0),
    tanh: Math.tanh,
    sigmoid: (x) => 1 / (1 + Math.exp(-x)),
    elu: (x) => (x > 0 ? x : Math.expm1(x)),
    gelu: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
  };

  class Decoder {
    constructor(spec) {
      this.shape = spec.shape;
      this.layers = spec.layers.map((layer) => ({
        n: layer.shape[0],
        m: layer.shape[1],
        kernel: f32(layer.kernel),
        bias: f32(layer.bias),
        activations: layer.activations.map((name) => {
          if (!ACTIVATIONS[name]) throw new Error("unknown activation " + name);
          return ACTIVATIONS[name];
        }),
      }));
      this.latents = this.layers[0].n;
    }
    // The decoded image (Float64Array, [H * W * C] in [0, 1]) of the latent point z.
    decode(z) {
      let h = Float64Array.from(z);
      for (const { n, m, kernel, bias, activations } of this.layers) {
        const out = Float64Array.from(bias);
        for (let i = 0; i < n; i++) {
          const hi = h[i];
          if (hi === 0) continue;
          const row = i * m;
          for (let j = 0; j < m; j++) out[j] += hi * kernel[row + j];
        }
        for (const act of activations) for (let j = 0; j < m; j++) out[j] = act(out[j]);
        h = out;
      }
      return h;
    }
  }

  function l2(a, b) {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
    return Math.sqrt(s);
  }

  // ---------------------------------------------------------------------------------------------
  // 1. PCA's worked example: draggable points, the 2 x 2 eigenproblem in closed form.

  // The top eigenvector of the covariance of `points` (optionally centred), with vae_jax.pca's
  // sign rule (its largest coordinate positive, ties to the first), codes and projections.
  function pca1(points, centre) {
    const n = points.length;
    let mx = 0, my = 0;
    if (centre) {
      for (const [x, y] of points) { mx += x / n; my += y / n; }
    }
    let a = 0, b = 0, c = 0;
    for (const [x, y] of points) {
      a += ((x - mx) * (x - mx)) / n;
      b += ((x - mx) * (y - my)) / n;
      c += ((y - my) * (y - my)) / n;
    }
    const half = (a - c) / 2, r = Math.hypot(half, b);
    const l1 = (a + c) / 2 + r, l2 = (a + c) / 2 - r;
    let v;
    if (r === 0) v = [1, 0];
    else if (a >= c) v = [l1 - c, b];
    else v = [b, l1 - a];
    const norm = Math.hypot(v[0], v[1]);
    v = [v[0] / norm, v[1] / norm];
    const lead = Math.abs(v[0]) >= Math.abs(v[1]) ? v[0] : v[1];
    if (lead < 0) v = [-v[0], -v[1]];
    const encoded = points.map(([x, y]) => (x - mx) * v[0] + (y - my) * v[1]);
    const decoded = encoded.map((e) => [mx + e * v[0], my + e * v[1]]);
    return { mean: [mx, my], component: v, eigenvalues: [l1, l2], ratio: a + c > 0 ? l1 / (a + c) : 0, encoded, decoded };
  }

  function initPca(d) {
    const names = Object.keys(d.points);
    const initial = names.map((k) => d.points[k].slice());
    let points = initial.map((p) => p.slice());
    const root = document.getElementById("pca-svg");
    const tbody = document.querySelector("#pca-table tbody");
    const centreBox = document.getElementById("pca-centre");
    const size = 440, m = 34, lim = 0.7;
    const sx = (v) => m + ((v + lim) / (2 * lim)) * (size - 2 * m);
    const sy = (v) => size - m - ((v + lim) / (2 * lim)) * (size - 2 * m);
    const inv = (px, py) => [((px - m) / (size - 2 * m)) * 2 * lim - lim, ((size - m - py) / (size - 2 * m)) * 2 * lim - lim];

    // Static layer: grid, axes, ticks.
    const defs = svg("defs", {}, root);
    const clip = svg("clipPath", { id: "pca-clip" }, defs);
    svg("rect", { x: m, y: m, width: size - 2 * m, height: size - 2 * m }, clip);
    for (let t = -0.6; t <= 0.61; t += 0.2) {
      const v = Math.round(t * 10) / 10;
      svg("line", { x1: sx(v), x2: sx(v), y1: m, y2: size - m, stroke: v === 0 ? "#999" : "#eee" }, root);
      svg("line", { y1: sy(v), y2: sy(v), x1: m, x2: size - m, stroke: v === 0 ? "#999" : "#eee" }, root);
      svg("text", { x: sx(v), y: size - m + 15, "text-anchor": "middle", "font-size": 11, fill: "#555" }, root).textContent = tickLabel(v);
      svg("text", { x: m - 6, y: sy(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#555" }, root).textContent = tickLabel(v);
    }
    svg("rect", { x: m, y: m, width: size - 2 * m, height: size - 2 * m, fill: "none", stroke: "#555" }, root);
    const dynamic = svg("g", { "clip-path": "url(#pca-clip)" }, root);
    const axisLine = svg("line", { stroke: "#1f5fa8", "stroke-width": 2 }, dynamic);
    const meanMark = svg("circle", { r: 3, fill: "#1f5fa8", visibility: "hidden" }, dynamic);
    const errors = [], crosses = [], circles = [], labels = [];
    for (let i = 0; i < names.length; i++) {
      errors.push(svg("line", { stroke: "#555", "stroke-width": 1.3, "stroke-dasharray": "3 3" }, dynamic));
      crosses.push(svg("path", { stroke: "#c62828", "stroke-width": 2, fill: "none" }, dynamic));
    }
    for (let i = 0; i < names.length; i++) {
      const g = svg("g", { class: "point", "data-name": names[i], tabindex: 0 }, root);
      circles.push(svg("circle", { r: 8, fill: "#111", stroke: "#fff", "stroke-width": 1.5 }, g));
      labels.push(svg("text", { "font-size": 14, "font-weight": 600, fill: "#111" }, g));
      labels[i].textContent = names[i];
      let dragging = false;
      g.addEventListener("pointerdown", (e) => { dragging = true; g.setPointerCapture(e.pointerId); e.preventDefault(); });
      g.addEventListener("pointermove", (e) => {
        if (!dragging) return;
        const pt = root.createSVGPoint();
        pt.x = e.clientX; pt.y = e.clientY;
        const local = pt.matrixTransform(root.getScreenCTM().inverse());
        const [x, y] = inv(local.x, local.y);
        points[i] = [Math.max(-lim + 0.02, Math.min(lim - 0.02, x)), Math.max(-lim + 0.02, Math.min(lim - 0.02, y))];
        update();
      });
      const stop = () => { dragging = false; };
      g.addEventListener("pointerup", stop);
      g.addEventListener("pointercancel", stop);
    }

    const rows = names.map((name) => {
      const tr = document.createElement("tr");
      tr.dataset.point = name;
      tr.innerHTML = `<td>${name}</td><td class="pca-initial"></td><td class="pca-encoded"></td><td class="pca-decoded"></td>`;
      tbody.appendChild(tr);
      return tr;
    });
    const pair = (p) => `(${num(p[0])}, ${num(p[1])})`;
    const status = document.getElementById("pca-status");
    const componentText = document.getElementById("pca-component");
    const measured = d.measured;

    function update() {
      const r = pca1(points, centreBox.checked);
      const [vx, vy] = r.component, [mx, my] = r.mean;
      axisLine.setAttribute("x1", sx(mx - 2 * vx)); axisLine.setAttribute("y1", sy(my - 2 * vy));
      axisLine.setAttribute("x2", sx(mx + 2 * vx)); axisLine.setAttribute("y2", sy(my + 2 * vy));
      meanMark.setAttribute("cx", sx(mx)); meanMark.setAttribute("cy", sy(my));
      meanMark.setAttribute("visibility", centreBox.checked ? "visible" : "hidden");
      for (let i = 0; i < names.length; i++) {
        const [x, y] = points[i], [u, w] = r.decoded[i];
        circles[i].setAttribute("cx", sx(x)); circles[i].setAttribute("cy", sy(y));
        labels[i].setAttribute("x", sx(x) + 9); labels[i].setAttribute("y", sy(y) - 9);
        errors[i].setAttribute("x1", sx(x)); errors[i].setAttribute("y1", sy(y));
        errors[i].setAttribute("x2", sx(u)); errors[i].setAttribute("y2", sy(w));
        const cx = sx(u), cy = sy(w), k = 5;
        crosses[i].setAttribute("d", `M${cx - k},${cy - k}L${cx + k},${cy + k}M${cx - k},${cy + k}L${cx + k},${cy - k}`);
        const cells = rows[i].children;
        cells[1].textContent = pair(points[i]);
        cells[1].dataset.x = x; cells[1].dataset.y = y;
        cells[2].textContent = num(r.encoded[i]);
        cells[2].dataset.value = r.encoded[i];
        cells[3].textContent = pair(r.decoded[i]);
        cells[3].dataset.x = u; cells[3].dataset.y = w;
      }
      componentText.innerHTML =
        `Principal component <b>(${num(vx, 4)}, ${num(vy, 4)})</b>; covariance eigenvalues ` +
        `${num(r.eigenvalues[0], 4)} and ${num(r.eigenvalues[1], 4)}: the component explains <b>${(100 * r.ratio).toFixed(1)}%</b> of the variance.`;
      componentText.dataset.x = vx; componentText.dataset.y = vy;
      const atLecture = !centreBox.checked && points.every((p, i) => p[0] === initial[i][0] && p[1] === initial[i][1]);
      if (atLecture) {
        const same = r.encoded.every((e, i) => num(e) === num(measured.encoded[i])) &&
          r.decoded.every((p, i) => pair(p) === pair(measured.decoded[i]));
        status.className = "status " + (same ? "ok" : "moved");
        status.textContent = same
          ? "The lecture's points: this table equals the lecture's (and experiments.pca_table's) at 2 decimals."
          : "The lecture's points, but the table differs from the experiment's: a bug.";
      } else {
        status.className = "status moved";
        status.textContent = centreBox.checked
          ? `Centred at the mean (${num(mx)}, ${num(my)}) (blue dot); codes and decodings are relative to it.`
          : "Moved points: the table is recomputed (Reset returns to the lecture's).";
      }
    }
    document.getElementById("pca-reset").addEventListener("click", () => {
      points = initial.map((p) => p.slice());
      centreBox.checked = false;
      update();
    });
    centreBox.addEventListener("change", update);
    update();
    api.pca = { compute: pca1, points: () => points.map((p) => p.slice()) };
  }

  // ---------------------------------------------------------------------------------------------
  // 2. PCA vs the linear autoencoder: the bases as images, |cosines|, principal angles.

  function diverging(v) {
    // RdBu_r: -1 blue, 0 white, +1 red.
    const blue = [33, 102, 172], red = [178, 24, 43], white = [247, 247, 247];
    const t = Math.min(1, Math.abs(v));
    const end = v < 0 ? blue : red;
    return white.map((w, i) => Math.round(w + (end[i] - w) * t));
  }
  function sequential(v) {
    // white -> dark blue
    const lo = [255, 255, 255], hi = [8, 48, 107];
    return lo.map((l, i) => Math.round(l + (hi[i] - l) * v));
  }

  function initLinear(d) {
    const [H, W] = d.shape;
    const e = d.latents, dim = H * W;
    const comps = f32(d.components), basis = f32(d.basis);
    const tiles = { pca: [], ae: [] };
    const cos = d.cosines;

    function tile(container, vectors, index, caption, kind) {
      const div = document.createElement("div");
      div.className = "tile";
      const canvas = document.createElement("canvas");
      const scale = Math.max(1, Math.floor(60 / W));
      canvas.width = W * scale;
      canvas.height = H * scale;
      canvas.style.width = W * scale + "px";
      const ctx = canvas.getContext("2d");
      let limit = 0;
      for (let p = 0; p < dim; p++) limit = Math.max(limit, Math.abs(vectors[index * dim + p]));
      const img = ctx.createImageData(W, H);
      for (let p = 0; p < dim; p++) {
        const [r, g, b] = diverging(vectors[index * dim + p] / (limit || 1));
        img.data.set([r, g, b, 255], 4 * p);
      }
      const small = document.createElement("canvas");
      small.width = W; small.height = H;
      small.getContext("2d").putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(small, 0, 0, W * scale, H * scale);
      div.appendChild(canvas);
      const label = document.createElement("div");
      label.innerHTML = caption;
      div.appendChild(label);
      div.addEventListener("pointerenter", () => highlight(kind, index));
      div.addEventListener("pointerleave", () => highlight(null, -1));
      container.appendChild(div);
      return div;
    }
    const pcaRow = document.getElementById("bases-pca"), aeRow = document.getElementById("bases-ae");
    for (let i = 0; i < e; i++) {
      tiles.pca.push(tile(pcaRow, comps, i, `${i + 1}<br>${sig(d.pca_variance[i])}`, "pca"));
    }
    for (let i = 0; i < e; i++) {
      const best = Math.max(...cos[i]);
      tiles.ae.push(tile(aeRow, basis, i, `${i + 1}<br>${sig(d.ae_variance[i])}, ${best.toFixed(2)}`, "ae"));
    }

    // |cosine| matrix.
    const cell = 30, left = 34, top = 34;
    const heat = document.getElementById("cosines-svg");
    const hw = left + e * cell + 8, hh = top + e * cell + 8;
    heat.setAttribute("width", hw); heat.setAttribute("height", hh);
    heat.setAttribute("viewBox", `0 0 ${hw} ${hh}`);
    svg("text", { x: left + (e * cell) / 2, y: 12, "text-anchor": "middle", "font-size": 11, fill: "#444" }, heat).textContent = "PCA component";
    const yl = svg("text", { x: 0, y: 0, "text-anchor": "middle", "font-size": 11, fill: "#444", transform: `translate(10 ${top + (e * cell) / 2}) rotate(-90)` }, heat);
    yl.textContent = "AE basis vector";
    for (let j = 0; j < e; j++) {
      svg("text", { x: left + j * cell + cell / 2, y: top - 5, "text-anchor": "middle", "font-size": 10, fill: "#555" }, heat).textContent = j + 1;
      svg("text", { x: left - 5, y: top + j * cell + cell / 2 + 3.5, "text-anchor": "end", "font-size": 10, fill: "#555" }, heat).textContent = j + 1;
    }
    for (let i = 0; i < e; i++) {
      for (let j = 0; j < e; j++) {
        const v = cos[i][j];
        const [r, g, b] = sequential(v);
        svg("rect", { x: left + j * cell, y: top + i * cell, width: cell, height: cell, fill: `rgb(${r},${g},${b})` }, heat);
        const t = svg("text", { x: left + j * cell + cell / 2, y: top + i * cell + cell / 2 + 3.5, "text-anchor": "middle", "font-size": 9.5, fill: v > 0.5 ? "#fff" : "#333" }, heat);
        t.textContent = v.toFixed(2).replace(/^0/, "");
      }
    }
    const rowMark = svg("rect", { fill: "none", stroke: "#e08a00", "stroke-width": 2.5, visibility: "hidden" }, heat);

    function highlight(kind, index) {
      for (const t of [...tiles.pca, ...tiles.ae]) t.classList.remove("hot", "partner");
      rowMark.setAttribute("visibility", kind ? "visible" : "hidden");
      if (!kind) return;
      if (kind === "ae") {
        const partner = cos[index].indexOf(Math.max(...cos[index]));
        tiles.ae[index].classList.add("hot");
        tiles.pca[partner].classList.add("partner");
        rowMark.setAttribute("x", left); rowMark.setAttribute("y", top + index * cell);
        rowMark.setAttribute("width", e * cell); rowMark.setAttribute("height", cell);
      } else {
        const column = cos.map((row) => row[index]);
        const partner = column.indexOf(Math.max(...column));
        tiles.pca[index].classList.add("hot");
        tiles.ae[partner].classList.add("partner");
        rowMark.setAttribute("x", left + index * cell); rowMark.setAttribute("y", top);
        rowMark.setAttribute("width", cell); rowMark.setAttribute("height", e * cell);
      }
    }

    // Principal angles.
    const chart = document.getElementById("angles-svg");
    const cw = 380, ch = 240, ml = 46, mr = 10, mt = 14, mb = 40;
    chart.setAttribute("width", cw); chart.setAttribute("height", ch);
    chart.setAttribute("viewBox", `0 0 ${cw} ${ch}`);
    const top_ = Math.max(1, ...d.angles) * 1.1;
    const ticks = niceTicks(0, top_, 4);
    const ymax = Math.max(top_, ticks[ticks.length - 1]);
    const yy = (v) => mt + (1 - v / ymax) * (ch - mt - mb);
    const bw = (cw - ml - mr) / d.angles.length;
    for (const t of ticks) {
      svg("line", { x1: ml, x2: cw - mr, y1: yy(t), y2: yy(t), stroke: t === 0 ? "#555" : "#e6e6e6" }, chart);
      svg("text", { x: ml - 5, y: yy(t) + 4, "text-anchor": "end", "font-size": 10.5, fill: "#555" }, chart).textContent = tickLabel(t);
    }
    d.angles.forEach((a, i) => {
      svg("rect", { x: ml + i * bw + bw * 0.15, y: yy(a), width: bw * 0.7, height: yy(0) - yy(a), fill: "#1f77b4" }, chart)
        .appendChild(document.createElementNS(SVG_NS, "title")).textContent = `angle ${i + 1}: ${a.toFixed(3)} degrees`;
      svg("text", { x: ml + i * bw + bw / 2, y: ch - mb + 14, "text-anchor": "middle", "font-size": 10, fill: "#555" }, chart).textContent = i + 1;
    });
    svg("text", { x: ml + (cw - ml - mr) / 2, y: ch - 8, "text-anchor": "middle", "font-size": 11, fill: "#444" }, chart).textContent =
      "principal angle (ascending)";
    svg("text", { x: 0, y: 0, "text-anchor": "middle", "font-size": 11, fill: "#444", transform: `translate(12 ${mt + (ch - mt - mb) / 2}) rotate(-90)` }, chart).textContent = "degrees";
  }

  // ---------------------------------------------------------------------------------------------
  // 3. AE vs VAE latent planes: live decoding under the pointer, paths between two points.

  const PATH_IMAGES = 10, PATH_STEPS = 20;

  function initLatent(d) {
    const labels = bytes(d.labels);
    api.latent = {};
    for (const [name, model] of Object.entries(d.models)) {
      const root = document.getElementById("latent-" + name);
      api.latent[name] = latentPanel(root, name, model, labels);
    }
  }

  function latentPanel(root, name, m, labels) {
    const decoder = new Decoder(m.decoder);
    api.decoders["latent/" + name] = decoder;
    const shape = m.decoder.shape;
    const codes = f32(m.codes), n = codes.length / 2;
    const plane = root.querySelector("canvas.plane");
    const { ctx, w, h, ratio } = hidpi(plane);
    let [bx0, bx1, by0, by1] = m.box;
    if (m.prior) { bx0 = Math.min(bx0, -2); bx1 = Math.max(bx1, 2); by0 = Math.min(by0, -2); by1 = Math.max(by1, 2); }
    const ax = axes(w, h, squareBounds([bx0, bx1, by0, by1], 0.1));

    // The static layer: frame, codes, box, prior circles.
    const base = document.createElement("canvas");
    base.width = plane.width; base.height = plane.height;
    const b = base.getContext("2d");
    b.setTransform(ratio, 0, 0, ratio, 0, 0);
    b.fillStyle = "#fff";
    b.fillRect(0, 0, w, h);
    b.save();
    b.beginPath();
    b.rect(ax.margin.l, ax.margin.t, ax.W, ax.H);
    b.clip();
    b.globalAlpha = 0.55;
    for (let i = 0; i < n; i++) {
      b.fillStyle = TAB10[labels[i] % 10];
      b.fillRect(ax.x(codes[2 * i]) - 1, ax.y(codes[2 * i + 1]) - 1, 2.2, 2.2);
    }
    b.globalAlpha = 1;
    b.setLineDash([5, 4]);
    b.strokeStyle = "#222";
    const [x0, x1, y0, y1] = m.box;
    b.strokeRect(ax.x(x0), ax.y(y1), ax.x(x1) - ax.x(x0), ax.y(y0) - ax.y(y1));
    if (m.prior) {
      b.setLineDash([2, 3]);
      b.strokeStyle = "#555";
      for (const radius of [1, 2]) {
        b.beginPath();
        b.arc(ax.x(0), ax.y(0), radius * ax.scale, 0, 2 * Math.PI);
        b.stroke();
      }
    }
    b.restore();
    drawFrame(b, ax, "z[0]", "z[1]");

    const view = root.querySelector("canvas.decoded");
    const vscale = Math.max(1, Math.floor(140 / shape[1]));
    view.width = shape[1] * vscale; view.height = shape[0] * vscale;
    const vctx = view.getContext("2d");
    const strip = root.querySelector("canvas.strip");
    const stripCtx = strip.getContext("2d");
    const readout = root.querySelector(".readout"), pathReadout = root.querySelector(".path-readout");

    // Class means: the default path goes from the first class's to the last's.
    const sums = new Map();
    for (let i = 0; i < n; i++) {
      const s = sums.get(labels[i]) || [0, 0, 0];
      s[0] += codes[2 * i]; s[1] += codes[2 * i + 1]; s[2] += 1;
      sums.set(labels[i], s);
    }
    const classes = [...sums.keys()].sort((a, b) => a - b);
    const centroid = (k) => { const s = sums.get(k); return [s[0] / s[2], s[1] / s[2]]; };
    let pointer = centroid(classes[0]);
    let path = [centroid(classes[0]), centroid(classes[classes.length - 1])];
    let dragStart = null, lastImage = null;

    function nearest(z) {
      let best = Infinity;
      for (let i = 0; i < n; i++) {
        const dx = codes[2 * i] - z[0], dy = codes[2 * i + 1] - z[1];
        const d2 = dx * dx + dy * dy;
        if (d2 < best) best = d2;
      }
      return Math.sqrt(best);
    }

    function render() {
      ctx.save();
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.drawImage(base, 0, 0);
      ctx.restore();
      ctx.save();
      ctx.beginPath();
      ctx.rect(ax.margin.l, ax.margin.t, ax.W, ax.H);
      ctx.clip();
      if (path) {
        const [a, bb] = path;
        ctx.strokeStyle = "#111";
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.moveTo(ax.x(a[0]), ax.y(a[1]));
        ctx.lineTo(ax.x(bb[0]), ax.y(bb[1]));
        ctx.stroke();
        for (let k = 0; k < PATH_IMAGES; k++) {
          const t = k / (PATH_IMAGES - 1);
          const px = ax.x(a[0] + t * (bb[0] - a[0])), py = ax.y(a[1] + t * (bb[1] - a[1]));
          ctx.fillStyle = k === 0 || k === PATH_IMAGES - 1 ? "#111" : "#fff";
          ctx.strokeStyle = "#111";
          ctx.lineWidth = 1.2;
          ctx.beginPath();
          ctx.arc(px, py, k === 0 || k === PATH_IMAGES - 1 ? 4 : 2.6, 0, 2 * Math.PI);
          ctx.fill();
          ctx.stroke();
        }
      }
      const px = ax.x(pointer[0]), py = ax.y(pointer[1]);
      ctx.lineWidth = 3;
      ctx.strokeStyle = "#fff";
      ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.stroke();
      ctx.lineWidth = 1.6;
      ctx.strokeStyle = "#c62828";
      ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(px - 10, py); ctx.lineTo(px - 3, py); ctx.moveTo(px + 3, py); ctx.lineTo(px + 10, py);
      ctx.moveTo(px, py - 10); ctx.lineTo(px, py - 3); ctx.moveTo(px, py + 3); ctx.lineTo(px, py + 10); ctx.stroke();
      ctx.restore();
    }

    function showPointer() {
      lastImage = decoder.decode(pointer);
      drawPixels(vctx, lastImage, shape, 0, 0, view.width, view.height);
      const dist = nearest(pointer);
      const empty = dist > m.threshold;
      readout.innerHTML =
        `z = (${num(pointer[0])}, ${num(pointer[1])})<br>nearest test code: ${sig(dist, 2)}<br>` +
        (empty
          ? `<span class="empty">empty region</span> (farther than ${sig(m.threshold, 2)})`
          : `<span class="filled">among the codes</span> (within ${sig(m.threshold, 2)})`);
      readout.dataset.z = JSON.stringify(pointer);
    }

    function showPath() {
      const [a, bb] = path;
      const cellW = strip.width / PATH_IMAGES;
      stripCtx.fillStyle = "#fff";
      stripCtx.fillRect(0, 0, strip.width, strip.height);
      const size = Math.min(cellW - 4, strip.height);
      for (let k = 0; k < PATH_IMAGES; k++) {
        const t = k / (PATH_IMAGES - 1);
        const img = decoder.decode([a[0] + t * (bb[0] - a[0]), a[1] + t * (bb[1] - a[1])]);
        drawPixels(stripCtx, img, shape, k * cellW + (cellW - size) / 2, (strip.height - size) / 2, size, size);
      }
      // The path's continuity, as latent_geometry.continuity measures one path: the largest step's share
      // of the change between the ends, and the output change per code-std of latent movement.
      const outs = [];
      for (let k = 0; k <= PATH_STEPS; k++) {
        const t = k / PATH_STEPS;
        outs.push(decoder.decode([a[0] + t * (bb[0] - a[0]), a[1] + t * (bb[1] - a[1])]));
      }
      const dz = Math.hypot(bb[0] - a[0], bb[1] - a[1]) / PATH_STEPS;
      let largest = 0, ratio = 0;
      for (let k = 0; k < PATH_STEPS; k++) {
        const step = l2(outs[k + 1], outs[k]);
        largest = Math.max(largest, step);
        ratio += step / (dz / m.code_std) / PATH_STEPS;
      }
      const whole = l2(outs[PATH_STEPS], outs[0]);
      if (dz === 0 || whole === 0) {
        pathReadout.textContent = "Press and drag on the plane to draw a path.";
        return;
      }
      pathReadout.innerHTML =
        `path: largest of ${PATH_STEPS} steps = <b>${(largest / whole).toFixed(2)}</b> of the whole change ` +
        `(even: ${(1 / PATH_STEPS).toFixed(2)}; measured mean over random test paths: ${m.measured_max_jump.toFixed(2)}); ` +
        `change per code-std: ${ratio.toFixed(1)}`;
      pathReadout.dataset.maxJump = largest / whole;
    }

    function at(e) {
      const rect = plane.getBoundingClientRect();
      const px = Math.max(ax.margin.l, Math.min(ax.margin.l + ax.W, e.clientX - rect.left));
      const py = Math.max(ax.margin.t, Math.min(ax.margin.t + ax.H, e.clientY - rect.top));
      return ax.inv(px, py);
    }
    plane.addEventListener("pointerdown", (e) => {
      dragStart = at(e);
      plane.setPointerCapture(e.pointerId);
      e.preventDefault();
    });
    plane.addEventListener("pointermove", (e) => {
      pointer = at(e);
      if (dragStart && Math.hypot(ax.x(pointer[0]) - ax.x(dragStart[0]), ax.y(pointer[1]) - ax.y(dragStart[1])) > 3) {
        path = [dragStart, pointer];
        showPath();
      }
      showPointer();
      render();
    });
    const end = () => { dragStart = null; };
    plane.addEventListener("pointerup", end);
    plane.addEventListener("pointercancel", end);

    showPointer();
    showPath();
    render();
    return {
      decode: (z) => Array.from(decoder.decode(z)),
      pointer: () => pointer.slice(),
      path: () => path.map((p) => p.slice()),
      image: () => Array.from(lastImage),
      axes: ax,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // 4. The KL weight and c: a control over the sweep's runs.

  function initRegularisation(d) {
    const labels = bytes(d.labels);
    const runs = d.runs.map((r) => ({ ...r, meansArr: f32(r.means), stdsArr: f32(r.stds), samplesArr: bytes(r.samples) }));
    const canvas = document.getElementById("reg-scatter");
    const { ctx, w, h } = hidpi(canvas);
    const samples = document.getElementById("reg-samples");
    const sctx = samples.getContext("2d");
    const caption = document.getElementById("reg-scatter-caption");
    const list = document.getElementById("reg-numbers");
    const sameAxes = document.getElementById("reg-same-axes");
    const buttons = [...document.querySelectorAll(".reg-control button")];
    const rows = [...document.querySelectorAll("table.sweep tbody tr")];

    function quantileRange(values, q) {
      const sorted = Float32Array.from(values).sort();
      const at = (p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(p * (sorted.length - 1))))];
      return [at(q), at(1 - q)];
    }
    function runBounds(r) {
      const xs = [], ys = [];
      for (let i = 0; i < r.meansArr.length / 2; i++) { xs.push(r.meansArr[2 * i]); ys.push(r.meansArr[2 * i + 1]); }
      const [x0, x1] = quantileRange(xs, 0.002), [y0, y1] = quantileRange(ys, 0.002);
      return [Math.min(x0, -1.2), Math.max(x1, 1.2), Math.min(y0, -1.2), Math.max(y1, 1.2)];
    }
    const bounds = runs.map(runBounds);
    const union = bounds.reduce((u, b) => [Math.min(u[0], b[0]), Math.max(u[1], b[1]), Math.min(u[2], b[2]), Math.max(u[3], b[3])]);
    let current = 0;

    function show(index) {
      current = index;
      const r = runs[index];
      const ax = axes(w, h, squareBounds(sameAxes.checked ? union : bounds[index], 0.06));
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, w, h);
      ctx.save();
      ctx.beginPath();
      ctx.rect(ax.margin.l, ax.margin.t, ax.W, ax.H);
      ctx.clip();
      const n = r.meansArr.length / 2;
      ctx.globalAlpha = 0.5;
      for (let i = 0; i < n; i++) {
        ctx.fillStyle = TAB10[labels[i] % 10];
        ctx.fillRect(ax.x(r.meansArr[2 * i]) - 1, ax.y(r.meansArr[2 * i + 1]) - 1, 2.2, 2.2);
      }
      ctx.globalAlpha = 0.6;
      ctx.lineWidth = 1;
      for (let i = 0; i < r.stdsArr.length / 2; i++) {
        ctx.strokeStyle = TAB10[labels[i] % 10];
        ctx.beginPath();
        ctx.ellipse(ax.x(r.meansArr[2 * i]), ax.y(r.meansArr[2 * i + 1]),
          Math.max(0.8, r.stdsArr[2 * i] * ax.scale), Math.max(0.8, r.stdsArr[2 * i + 1] * ax.scale), 0, 0, 2 * Math.PI);
        ctx.stroke();
      }
      ctx.globalAlpha = 1;
      ctx.setLineDash([5, 4]);
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 1.3;
      ctx.beginPath();
      ctx.arc(ax.x(0), ax.y(0), ax.scale, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.restore();
      drawFrame(ctx, ax, `z[${r.dims[0]}]`, `z[${r.dims[1]}]`);

      const [H, W] = d.shape, per = H * W * d.shape[2];
      const cols = Math.ceil(Math.sqrt(r.samplesArr.length / per));
      const cell = samples.width / cols;
      sctx.fillStyle = "#fff";
      sctx.fillRect(0, 0, samples.width, samples.height);
      for (let k = 0; k < r.samplesArr.length / per; k++) {
        const x = (k % cols) * cell, y = Math.floor(k / cols) * cell;
        drawPixels(sctx, r.samplesArr, d.shape, x + 1, y + 1, cell - 2, cell - 2, true, k * per);
      }

      const row = r.numbers;
      caption.textContent =
        `\u03b2 = ${r.beta}, c = ${r.c}: posterior means in latent dimensions ${r.dims[0]} and ${r.dims[1]} ` +
        `(variance over the images ${sig(r.dim_variance[0])} and ${sig(r.dim_variance[1])}); dashed: N(0, I)'s unit circle.`;
      const items = [
        ["test squared error", sig(row.squared_error, 4)],
        ["KL (nats)", sig(row.kl, 4)],
        ["active units", `${row.active_units}/${d.latents}`],
        ["posterior std (mean)", sig(row.posterior_std, 3)],
        ["spread of posterior means", sig(row.mean_spread, 3)],
        ["prior samples: confidence ratio", sig(row.confidence_ratio, 3)],
        ["prior samples: empty fraction", sig(row.empty_fraction, 3)],
      ];
      list.innerHTML = items.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
      list.dataset.run = index;
      for (const b of buttons) b.setAttribute("aria-pressed", String(Number(b.dataset.run) === index));
      for (const tr of rows) tr.classList.toggle("selected", Number(tr.dataset.run) === index);
    }
    for (const b of buttons) b.addEventListener("click", () => show(Number(b.dataset.run)));
    for (const tr of rows) tr.addEventListener("click", () => show(Number(tr.dataset.run)));
    sameAxes.addEventListener("change", () => show(current));
    show(0);
    api.regularisation = { show, runs: runs.length, current: () => current };
  }

  // ---------------------------------------------------------------------------------------------
  // 5. The likelihood: NLL against k.

  function initLikelihood(d) {
    const chart = document.getElementById("likelihood-svg");
    const cw = 540, ch = 300, ml = 52, mr = 180, mt = 14, mb = 40;
    chart.setAttribute("width", cw); chart.setAttribute("height", ch);
    chart.setAttribute("viewBox", `0 0 ${cw} ${ch}`);
    const lk = d.k.map(Math.log10);
    const kx0 = Math.min(...lk), kx1 = Math.max(...lk);
    const padx = Math.max(0.2, (kx1 - kx0) * 0.06);
    const xs = (k) => ml + ((Math.log10(k) - kx0 + padx) / (kx1 - kx0 + 2 * padx)) * (cw - ml - mr);
    const values = d.nll.flatMap((v, i) => [v - 2 * d.se[i], v + 2 * d.se[i]]).concat(d.published.map((p) => p.nll));
    let y0 = Math.min(...values), y1 = Math.max(...values);
    const pad = (y1 - y0) * 0.08 || 1;
    y0 -= pad; y1 += pad;
    const ys = (v) => mt + ((y1 - v) / (y1 - y0)) * (ch - mt - mb);
    for (const t of niceTicks(y0, y1, 5)) {
      svg("line", { x1: ml, x2: cw - mr, y1: ys(t), y2: ys(t), stroke: "#ececec" }, chart);
      svg("text", { x: ml - 6, y: ys(t) + 4, "text-anchor": "end", "font-size": 10.5, fill: "#555" }, chart).textContent = tickLabel(t);
    }
    svg("rect", { x: ml, y: mt, width: cw - ml - mr, height: ch - mt - mb, fill: "none", stroke: "#555" }, chart);
    // Published values: dashed lines, labels pushed apart (12 px at least) where they would overlap.
    const order = d.published.map((p, i) => i).sort((a, b) => ys(d.published[a].nll) - ys(d.published[b].nll));
    const labelY = [];
    let previous = -Infinity;
    for (const i of order) {
      labelY[i] = Math.max(ys(d.published[i].nll), previous + 12);
      previous = labelY[i];
    }
    d.published.forEach((p, i) => {
      svg("line", { x1: ml, x2: cw - mr, y1: ys(p.nll), y2: ys(p.nll), stroke: "#9a9a9a", "stroke-dasharray": "4 3" }, chart);
      const label = svg("text", { x: cw - mr + 6, y: labelY[i] + 3.5, "font-size": 10, fill: "#666" }, chart);
      label.textContent = `${p.nll.toFixed(2)} ${p.label}`;
      svg("title", {}, label).textContent = p.source;
    });
    const line = d.k.map((k, i) => `${i ? "L" : "M"}${xs(k)},${ys(d.nll[i])}`).join("");
    svg("path", { d: line, stroke: "#1f77b4", "stroke-width": 2, fill: "none" }, chart);
    d.k.forEach((k, i) => {
      const x = xs(k);
      svg("line", { x1: x, x2: x, y1: ys(d.nll[i] - 2 * d.se[i]), y2: ys(d.nll[i] + 2 * d.se[i]), stroke: "#1f77b4" }, chart);
      svg("circle", { cx: x, cy: ys(d.nll[i]), r: 4, fill: "#1f77b4" }, chart);
      svg("text", { x, y: ch - mb + 15, "text-anchor": "middle", "font-size": 10.5, fill: "#555" }, chart).textContent = k;
      svg("text", { x: x + 6, y: ys(d.nll[i]) - 7, "font-size": 10.5, fill: "#1f4f7a" }, chart).textContent = d.nll[i].toFixed(2);
    });
    svg("text", { x: ml + (cw - ml - mr) / 2, y: ch - 8, "text-anchor": "middle", "font-size": 11, fill: "#444" }, chart).textContent =
      "k, importance samples (log scale)";
    svg("text", { x: 0, y: 0, "text-anchor": "middle", "font-size": 11, fill: "#444", transform: `translate(13 ${mt + (ch - mt - mb) / 2}) rotate(-90)` }, chart).textContent = "test NLL (nats)";
  }

  // ---------------------------------------------------------------------------------------------

  const SECTIONS = [
    ["pca", initPca],
    ["linear", initLinear],
    ["latent", initLatent],
    ["reg", initRegularisation],
    ["likelihood", initLikelihood],
  ];
  for (const [key, init] of SECTIONS) {
    if (!DATA[key]) continue;
    const t0 = performance.now();
    try {
      init(DATA[key]);
    } catch (error) {
      api.errors.push(key + ": " + error);
      console.error("lecture page, section " + key + ":", error);
    }
    api.timings[key] = performance.now() - t0;
  }
  // The page's decoders, for tests and the curious: lecturePage.decode("latent/VAE", [0, 0]).
  api.decode = (name, z) => Array.from(api.decoders[name].decode(z));
  api.timings.total = performance.now() - started;
  api.ready = true;
})();
