/* voxseg report: slice explorer, 3D view, objects table. No dependencies but plotly.js (inlined). */
(function () {
  'use strict';

  const D = JSON.parse(document.getElementById('voxseg-data').textContent);
  const [NZ, NY, NX] = D.display.shape;
  const SP = D.display.spacing; // physical size of one displayed voxel (z, y, x)
  const FACT = D.display.factors;
  const UNIT = D.unit;
  const STRIDE = [NY * NX, NX, 1];
  const AXES = ['z', 'y', 'x'];
  // plane normal to `axis`, drawn with `rows` down and `cols` across
  const VIEWS = {
    z: { axis: 0, rows: 1, cols: 2 },
    x: { axis: 2, rows: 1, cols: 0 },
    y: { axis: 1, rows: 0, cols: 2 },
  };
  const IDS = D.label_ids;
  const RGB = D.colors.map(hexToRgb);
  const ID_INDEX = new Map(IDS.map((id, i) => [id, i]));
  const COLS = D.table.columns;
  const LABEL_COL = COLS.indexOf('label');
  const ROW_OF = new Map(); // label id -> table row (array)
  D.table.rows.forEach((row) => ROW_OF.set(row[LABEL_COL], row));

  const state = {
    pos: [NZ >> 1, NY >> 1, NX >> 1],
    overlay: 'outlines',
    crosshair: true,
    selected: null,
    hovered: null,
  };
  let grey = null; // Uint8Array, display volume
  let lab = null; // Uint32Array, index into IDS + 1 (0 = background)
  const rowEls = new Map(); // label id -> <tr>
  let plot = null; // 3D view bookkeeping

  function hexToRgb(h) {
    return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
  }

  function fmt(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (typeof v !== 'number') return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e7 || a < 1e-3)) return v.toExponential(3);
    if (a >= 100) return String(parseFloat(v.toFixed(1)));
    return String(parseFloat(v.toPrecision(4)));
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  }

  function b64bytes(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function atlasPixels(src) {
    const img = new Image();
    img.src = src;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(img, 0, 0);
    return ctx.getImageData(0, 0, c.width, c.height).data;
  }

  // atlas (z planes tiled in a grid, D.display.columns wide) -> flat (z, y, x) array
  function unpack(rgba, decode, Out) {
    const cols = D.display.columns;
    const width = cols * NX;
    const out = new Out(NZ * NY * NX);
    for (let z = 0; z < NZ; z++) {
      const r0 = Math.floor(z / cols) * NY;
      const c0 = (z % cols) * NX;
      for (let y = 0; y < NY; y++) {
        let p = ((r0 + y) * width + c0) * 4;
        let q = (z * NY + y) * NX;
        for (let x = 0; x < NX; x++, p += 4, q++) out[q] = decode(rgba, p);
      }
    }
    return out;
  }

  // ------------------------------------------------------------ slice explorer
  const views = {};

  function setupViews() {
    for (const name of Object.keys(VIEWS)) {
      const v = Object.assign({ name }, VIEWS[name]);
      v.canvas = document.getElementById('canvas-' + name);
      v.wrap = v.canvas.parentElement;
      v.nr = D.display.shape[v.rows];
      v.nc = D.display.shape[v.cols];
      v.canvas.width = v.nc;
      v.canvas.height = v.nr;
      v.ctx = v.canvas.getContext('2d');
      v.img = v.ctx.createImageData(v.nc, v.nr);
      v.labels = new Uint32Array(v.nr * v.nc);
      v.xhV = v.wrap.querySelector('.xh-v');
      v.xhH = v.wrap.querySelector('.xh-h');
      v.canvas.addEventListener('mousemove', (e) => onHover(v, e));
      v.canvas.addEventListener('mouseleave', () => { setHover(null); });
      v.canvas.addEventListener('click', (e) => onClick(v, e));
      views[name] = v;
    }
    for (let a = 0; a < 3; a++) {
      const s = document.getElementById('slider-' + AXES[a]);
      s.max = String(D.display.shape[a] - 1);
      s.value = String(state.pos[a]);
      s.addEventListener('input', () => { state.pos[a] = Number(s.value); updateSliderText(a); renderAll(); });
      updateSliderText(a);
    }
    document.querySelectorAll('input[name=overlay]').forEach((r) => {
      r.disabled = !lab;
      r.addEventListener('change', () => { if (r.checked) { state.overlay = r.value; renderAll(); } });
    });
    if (!lab) state.overlay = 'off';
    const xh = document.getElementById('crosshair');
    xh.addEventListener('change', () => {
      document.getElementById('ortho').classList.toggle('no-crosshair', !xh.checked);
    });
    if (FACT.some((f) => f > 1)) {
      document.getElementById('display-note').textContent =
        'shown every ' + FACT.join(' × ') + ' voxels (z × y × x) of ' + D.shape.join(' × ');
    }
    layoutViews();
    window.addEventListener('resize', layoutViews);
  }

  function updateSliderText(a) {
    const i = state.pos[a] * FACT[a];
    document.getElementById('out-' + AXES[a]).textContent =
      i + ' / ' + (D.shape[a] - 1) + '  (' + fmt(i * D.spacing[a]) + ' ' + UNIT + ')';
  }

  function layoutViews() {
    const box = document.getElementById('ortho');
    const info = box.querySelector('.view-info');
    const avail = Math.max(240, box.parentElement.clientWidth - 40);
    const physW = NX * SP[2] + NZ * SP[0];
    const physH = NY * SP[1] + NZ * SP[0];
    const maxH = Math.max(320, window.innerHeight * 0.8);
    const k = Math.min(avail / physW, maxH / physH);
    const size = { z: [NX * SP[2], NY * SP[1]], x: [NZ * SP[0], NY * SP[1]], y: [NX * SP[2], NZ * SP[0]] };
    for (const name of Object.keys(views)) {
      const v = views[name];
      v.canvas.style.width = Math.max(1, Math.round(size[name][0] * k)) + 'px';
      v.canvas.style.height = Math.max(1, Math.round(size[name][1] * k)) + 'px';
    }
    info.style.maxWidth = Math.max(180, Math.round(NZ * SP[0] * k)) + 'px';
    updateCrosshairs();
  }

  function renderAll() {
    for (const name of Object.keys(views)) renderView(views[name]);
    updateCrosshairs();
  }

  function renderView(v) {
    const base = state.pos[v.axis] * STRIDE[v.axis];
    const sr = STRIDE[v.rows];
    const sc = STRIDE[v.cols];
    const nr = v.nr;
    const nc = v.nc;
    const px = v.img.data;
    const L = v.labels;
    for (let r = 0; r < nr; r++) {
      for (let c = 0; c < nc; c++) {
        const q = base + r * sr + c * sc;
        const o = (r * nc + c) * 4;
        const g = grey[q];
        px[o] = g; px[o + 1] = g; px[o + 2] = g; px[o + 3] = 255;
        L[r * nc + c] = lab ? lab[q] : 0;
      }
    }
    if (lab && state.overlay !== 'off') {
      const selIndex = state.selected === null ? -1 : ID_INDEX.get(state.selected) + 1;
      for (let r = 0; r < nr; r++) {
        for (let c = 0; c < nc; c++) {
          const i = r * nc + c;
          const k = L[i];
          if (k === 0) continue;
          const col = RGB[k - 1];
          const isSel = k === selIndex;
          let a;
          if (state.overlay === 'filled') {
            a = isSel ? 0.75 : (selIndex > 0 ? 0.3 : 0.45);
          } else {
            const edge = (r > 0 && L[i - nc] !== k) || (r < nr - 1 && L[i + nc] !== k) ||
              (c > 0 && L[i - 1] !== k) || (c < nc - 1 && L[i + 1] !== k);
            a = edge ? 1 : (isSel ? 0.35 : 0);
          }
          if (a === 0) continue;
          const o = i * 4;
          px[o] = px[o] * (1 - a) + col[0] * a;
          px[o + 1] = px[o + 1] * (1 - a) + col[1] * a;
          px[o + 2] = px[o + 2] * (1 - a) + col[2] * a;
        }
      }
    }
    v.ctx.putImageData(v.img, 0, 0);
  }

  function updateCrosshairs() {
    for (const name of Object.keys(views)) {
      const v = views[name];
      const w = v.canvas.clientWidth;
      const h = v.canvas.clientHeight;
      v.xhV.style.left = ((state.pos[v.cols] + 0.5) / v.nc * w) + 'px';
      v.xhH.style.top = ((state.pos[v.rows] + 0.5) / v.nr * h) + 'px';
    }
  }

  function voxelAt(v, e) {
    const rect = v.canvas.getBoundingClientRect();
    const c = Math.min(v.nc - 1, Math.max(0, Math.floor((e.clientX - rect.left) / rect.width * v.nc)));
    const r = Math.min(v.nr - 1, Math.max(0, Math.floor((e.clientY - rect.top) / rect.height * v.nr)));
    const p = state.pos.slice();
    p[v.rows] = r;
    p[v.cols] = c;
    return p;
  }

  function labelAt(p) {
    if (!lab) return null;
    const k = lab[p[0] * STRIDE[0] + p[1] * STRIDE[1] + p[2]];
    return k ? IDS[k - 1] : null;
  }

  function onHover(v, e) {
    const p = voxelAt(v, e);
    const id = labelAt(p);
    const full = p.map((i, a) => i * FACT[a]);
    const phys = full.map((i, a) => fmt(i * D.spacing[a]));
    const g = grey[p[0] * STRIDE[0] + p[1] * STRIDE[1] + p[2]];
    let text = '<b>z</b> ' + full[0] + ' &nbsp;<b>y</b> ' + full[1] + ' &nbsp;<b>x</b> ' + full[2] +
      '<br>(' + phys.join(', ') + ') ' + esc(UNIT) + '<br>display grey ' + g + ' / 255<br>';
    text += id === null ? 'background' : '<span class="swatch" style="background:' + D.colors[ID_INDEX.get(id)] +
      '"></span><b>label ' + id + '</b>';
    document.getElementById('hover-info').innerHTML = text;
    setHover(id);
  }

  function onClick(v, e) {
    const p = voxelAt(v, e);
    state.pos[v.rows] = p[v.rows];
    state.pos[v.cols] = p[v.cols];
    syncSliders();
    select(labelAt(p), 'plane');
  }

  function syncSliders() {
    for (let a = 0; a < 3; a++) {
      document.getElementById('slider-' + AXES[a]).value = String(state.pos[a]);
      updateSliderText(a);
    }
  }

  function setHover(id) {
    if (state.hovered === id) return;
    if (state.hovered !== null && rowEls.has(state.hovered)) rowEls.get(state.hovered).classList.remove('hover');
    state.hovered = id;
    if (id !== null && rowEls.has(id)) rowEls.get(id).classList.add('hover');
  }

  // ------------------------------------------------------------ selection
  function select(id, source) {
    if (state.selected !== null && rowEls.has(state.selected)) rowEls.get(state.selected).classList.remove('selected');
    state.selected = id;
    const panel = document.getElementById('selection');
    if (id === null) {
      panel.innerHTML = '<p class="muted">Click an object in a plane, in the 3D view or in the table.</p>';
    } else {
      const i = ID_INDEX.get(id);
      let h = '<h3><span class="swatch" style="background:' + (i === undefined ? '#999' : D.colors[i]) +
        '"></span>Label ' + id + '</h3>';
      const row = ROW_OF.get(id);
      if (row) {
        h += '<dl>';
        COLS.forEach((c, j) => {
          const unit = D.table.units[j] ? ' <span class="muted">' + esc(D.table.units[j]) + '</span>' : '';
          h += '<dt>' + esc(c.replace(/_/g, ' ')) + '</dt><dd data-column="' + esc(c) + '">' + esc(fmt(row[j])) + unit + '</dd>';
        });
        h += '</dl>';
      } else {
        h += '<p class="muted">Not in the objects table.</p>';
      }
      h += '<button type="button" id="clear-selection">Clear selection</button>';
      panel.innerHTML = h;
      document.getElementById('clear-selection').addEventListener('click', () => select(null, 'button'));
      const tr = rowEls.get(id);
      if (tr) {
        tr.classList.add('selected');
        if (source !== 'table') {
          const wrap = document.getElementById('table-wrap');
          const head = wrap.querySelector('thead').offsetHeight;
          wrap.scrollTop = Math.max(0, tr.offsetTop - head - wrap.clientHeight / 3);
        }
      }
      if (source === 'table' || source === '3d') {
        const anchor = D.anchors[ID_INDEX.get(id)];
        if (anchor) {
          state.pos = anchor.map((v, a) => Math.min(D.display.shape[a] - 1, Math.round(v / FACT[a])));
          syncSliders();
        }
      }
    }
    panel.dataset.label = id === null ? '' : String(id);
    if (grey) renderAll();
    if (plot && source !== 'init') highlight3d();
  }

  // ------------------------------------------------------------ table
  function setupTable() {
    const table = document.getElementById('objects-table');
    const thead = table.tHead;
    const tbody = table.tBodies[0];
    const hr = document.createElement('tr');
    COLS.forEach((c, j) => {
      const th = document.createElement('th');
      th.innerHTML = esc(c.replace(/_/g, ' ')) + (D.table.units[j] ? ' <span class="unit">(' + esc(D.table.units[j]) + ')</span>' : '');
      th.dataset.column = c;
      th.title = 'sort by ' + c;
      th.addEventListener('click', () => sortBy(j, th));
      hr.appendChild(th);
    });
    thead.appendChild(hr);
    const frag = document.createDocumentFragment();
    D.table.rows.forEach((row) => {
      const tr = document.createElement('tr');
      const id = row[LABEL_COL];
      tr.dataset.label = String(id);
      tr._row = row;
      row.forEach((v, j) => {
        const td = document.createElement('td');
        if (j === LABEL_COL && ID_INDEX.has(id)) {
          td.innerHTML = '<span class="swatch" style="background:' + D.colors[ID_INDEX.get(id)] + '"></span>' + esc(fmt(v));
        } else {
          td.textContent = fmt(v);
        }
        tr.appendChild(td);
      });
      tr.addEventListener('click', () => select(id, 'table'));
      tr.addEventListener('mouseenter', () => setHover(id));
      tr.addEventListener('mouseleave', () => setHover(null));
      rowEls.set(id, tr);
      frag.appendChild(tr);
    });
    tbody.appendChild(frag);
  }

  function sortBy(j, th) {
    const desc = th.classList.contains('sorted-asc');
    th.parentElement.querySelectorAll('th').forEach((h) => h.classList.remove('sorted-asc', 'sorted-desc'));
    th.classList.add(desc ? 'sorted-desc' : 'sorted-asc');
    const tbody = document.getElementById('objects-table').tBodies[0];
    const trs = Array.from(tbody.rows);
    trs.sort((a, b) => {
      const x = a._row[j];
      const y = b._row[j];
      if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1; // missing last
      if (y === null || y === undefined) return -1;
      const r = (typeof x === 'number' && typeof y === 'number') ? x - y
        : String(x).localeCompare(String(y), undefined, { numeric: true });
      return desc ? -r : r;
    });
    trs.forEach((tr) => tbody.appendChild(tr));
  }

  // ------------------------------------------------------------ 3D view
  function setup3d() {
    const div = document.getElementById('plot3d');
    if (D.mesh_note) document.getElementById('mesh-note').textContent += ' ' + D.mesh_note;
    if (!D.meshes.length || typeof Plotly === 'undefined') {
      div.innerHTML = '<p class="muted" style="padding:1rem">No objects to show.</p>';
      div.style.height = 'auto';
      return Promise.resolve();
    }
    const volCol = COLS.indexOf('volume');
    const meshes = D.meshes.map((m) => {
      const v = new Float32Array(b64bytes(m.verts).buffer);
      const fb = b64bytes(m.faces).buffer;
      const f = m.faces_dtype === 'u2' ? new Uint16Array(fb) : new Uint32Array(fb);
      const n = v.length / 3;
      const x = new Float32Array(n), y = new Float32Array(n), z = new Float32Array(n);
      for (let i = 0; i < n; i++) { z[i] = v[3 * i]; y[i] = v[3 * i + 1]; x[i] = v[3 * i + 2]; }
      const nf = f.length / 3;
      const I = new Int32Array(nf), J = new Int32Array(nf), K = new Int32Array(nf);
      for (let t = 0; t < nf; t++) { I[t] = f[3 * t]; J[t] = f[3 * t + 1]; K[t] = f[3 * t + 2]; }
      return { label: m.label, x, y, z, i: I, j: J, k: K };
    });
    const hoverText = (id) => {
      const row = ROW_OF.get(id);
      let t = 'label ' + id;
      if (row && volCol >= 0) t += '<br>volume ' + fmt(row[volCol]) + ' ' + D.table.units[volCol];
      return t;
    };
    const lighting = { ambient: 0.6, diffuse: 0.55, specular: 0.08, roughness: 0.8, fresnel: 0.05 };
    const traces = [];
    plot = { div, merged: meshes.length > 150, labels: [], colors: [] };
    if (!plot.merged) {
      for (const m of meshes) {
        const color = D.colors[ID_INDEX.get(m.label)];
        plot.labels.push(m.label);
        plot.colors.push(color);
        traces.push({
          type: 'mesh3d', x: m.x, y: m.y, z: m.z, i: m.i, j: m.j, k: m.k, color, name: 'label ' + m.label,
          flatshading: false, lighting, lightposition: { x: 1e5, y: 2e5, z: 1e5 },
          hovertemplate: hoverText(m.label) + '<extra></extra>',
        });
      }
    } else {
      // many objects: one trace, a colour per face and a label per vertex
      let nv = 0, nf = 0;
      for (const m of meshes) { nv += m.x.length; nf += m.i.length; }
      const x = new Float32Array(nv), y = new Float32Array(nv), z = new Float32Array(nv);
      const I = new Int32Array(nf), J = new Int32Array(nf), K = new Int32Array(nf);
      const vlab = new Int32Array(nv);
      const text = new Array(nv);
      const faceLabel = new Int32Array(nf);
      let ov = 0, of = 0;
      for (const m of meshes) {
        x.set(m.x, ov); y.set(m.y, ov); z.set(m.z, ov);
        const t = hoverText(m.label);
        for (let q = 0; q < m.x.length; q++) { vlab[ov + q] = m.label; text[ov + q] = t; }
        for (let q = 0; q < m.i.length; q++) {
          I[of + q] = m.i[q] + ov; J[of + q] = m.j[q] + ov; K[of + q] = m.k[q] + ov; faceLabel[of + q] = m.label;
        }
        ov += m.x.length; of += m.i.length;
      }
      plot.vertexLabel = vlab;
      plot.faceLabel = faceLabel;
      traces.push({
        type: 'mesh3d', x, y, z, i: I, j: J, k: K, facecolor: faceColors(null), text,
        flatshading: false, lighting, hovertemplate: '%{text}<extra></extra>',
      });
    }
    // the volume's bounding box, for orientation
    const b = [0, 1, 2].map((a) => [-0.5 * D.spacing[a], (D.shape[a] - 0.5) * D.spacing[a]]);
    const bx = [], by = [], bz = [];
    const corner = (i, j, k) => [b[2][i], b[1][j], b[0][k]];
    const edges = [[0, 0, 0, 1, 0, 0], [0, 1, 0, 1, 1, 0], [0, 0, 1, 1, 0, 1], [0, 1, 1, 1, 1, 1],
      [0, 0, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0], [0, 0, 1, 0, 1, 1], [1, 0, 1, 1, 1, 1],
      [0, 0, 0, 0, 0, 1], [1, 0, 0, 1, 0, 1], [0, 1, 0, 0, 1, 1], [1, 1, 0, 1, 1, 1]];
    for (const e of edges) {
      const p = corner(e[0], e[1], e[2]), q = corner(e[3], e[4], e[5]);
      bx.push(p[0], q[0], null); by.push(p[1], q[1], null); bz.push(p[2], q[2], null);
    }
    traces.push({ type: 'scatter3d', mode: 'lines', x: bx, y: by, z: bz, hoverinfo: 'skip',
      line: { color: '#9aa3b2', width: 2 }, showlegend: false });
    const axis = (t) => ({ title: { text: t + ' (' + UNIT + ')' }, backgroundcolor: '#f7f8fa', showbackground: true,
      gridcolor: '#dde1e7', zeroline: false });
    // flat stacks (z thin) look best from a bit higher, with the box shifted up in the frame
    const ext = [0, 1, 2].map((a) => D.shape[a] * D.spacing[a]);
    const flat = 1 - ext[0] / Math.max(ext[0], ext[1], ext[2]);
    const layout = {
      margin: { l: 0, r: 0, t: 0, b: 0 },
      showlegend: false,
      paper_bgcolor: '#ffffff',
      scene: {
        aspectmode: 'data',
        xaxis: axis('x'),
        yaxis: Object.assign(axis('y'), { autorange: 'reversed' }),
        zaxis: axis('z'),
        camera: { eye: { x: 1.45, y: -1.45, z: 1.1 }, center: { x: 0, y: 0, z: -0.3 * flat } },
      },
      uirevision: 'keep',
    };
    const config = { displaylogo: false, responsive: true, scrollZoom: true,
      modeBarButtonsToRemove: ['resetCameraLastSave3d'] };
    return Plotly.newPlot(div, traces, layout, config).then(() => {
      div.on('plotly_click', (ev) => {
        const p = ev.points && ev.points[0];
        if (!p || p.data.type !== 'mesh3d') return;
        const id = plot.merged ? plot.vertexLabel[p.pointNumber] : plot.labels[p.curveNumber];
        if (id !== undefined) select(id, '3d');
      });
      div.dataset.ready = 'true';
    });
  }

  function mix(hex, t) {
    const c = hexToRgb(hex);
    return 'rgb(' + c.map((v) => Math.round(v * (1 - t) + 225 * t)).join(',') + ')';
  }

  function faceColors(sel) {
    const out = new Array(plot.faceLabel.length);
    for (let q = 0; q < out.length; q++) {
      const id = plot.faceLabel[q];
      const hex = D.colors[ID_INDEX.get(id)];
      out[q] = sel === null || id === sel ? hex : mix(hex, 0.75);
    }
    return out;
  }

  function highlight3d() {
    // deferred: restyling from inside plotly's own click handler breaks its later clicks
    if (plot.pending) return;
    plot.pending = true;
    setTimeout(() => {
      plot.pending = false;
      const sel = state.selected;
      if (plot.merged) {
        Plotly.restyle(plot.div, { facecolor: [faceColors(sel)] }, [0]);
      } else {
        const colors = plot.colors.map((c, i) => (sel === null || plot.labels[i] === sel ? c : mix(c, 0.75)));
        Plotly.restyle(plot.div, { color: colors }, plot.labels.map((_, i) => i));
      }
    }, 0);
  }

  // ------------------------------------------------------------ start
  function fail(err) {
    const box = document.getElementById('error');
    box.hidden = false;
    box.textContent = 'The report could not be displayed: ' + (err && err.message ? err.message : err);
    console.error(err);
  }

  async function main() {
    setupTable();
    const [g, l] = await Promise.all([
      atlasPixels(D.image),
      D.labels ? atlasPixels(D.labels) : Promise.resolve(null),
    ]);
    grey = unpack(g, (px, p) => px[p], Uint8Array);
    lab = l ? unpack(l, (px, p) => px[p] | (px[p + 1] << 8) | (px[p + 2] << 16), Uint32Array) : null;
    setupViews();
    renderAll();
    document.body.dataset.explorerReady = 'true';
    await setup3d();
    document.body.dataset.ready = 'true';
  }

  window.voxsegReport = { state, select, data: D };
  main().catch(fail);
})();
