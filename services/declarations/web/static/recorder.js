// 记录员工作台: finds subjects, enters oral declarations and deductions, shows the ledger.
// Talks only to this service's JSON API; the points_token cookie carries the sign-in.
"use strict";

(function () {
  const body = document.body;
  const fixedCommunity = body.dataset.community || "";
  const mayEnter = body.dataset.mayEnter === "1";
  const role = body.dataset.role || "";
  const timeZone = body.dataset.timezone || "Asia/Shanghai";

  // One vocabulary for every page (shared/vocabulary.py), handed over by the server with the page.
  const VOCABULARY = JSON.parse(body.dataset.vocabulary || "{}");
  const CATEGORIES = VOCABULARY.categories || {};
  const DIMENSIONS = VOCABULARY.dimensions || {};
  const CHANNELS = VOCABULARY.channels || {};
  const STATUSES = Object.assign({}, VOCABULARY.item_statuses || {}, VOCABULARY.subject_statuses || {});

  const $ = (id) => document.getElementById(id);
  const label = (map, code) => map[code] || code || "";
  const state = { subject: null, mode: "declaration", rules: [], rulesMonth: "", pendingKey: null, busy: false };

  // --- helpers ---------------------------------------------------------------------------------------
  function today() {
    // The county's civil date (month boundaries are Asia/Shanghai), whatever the PC's clock zone.
    return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" })
      .format(new Date());
  }

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    // crypto.randomUUID needs a secure context (https or localhost); an office LAN address may be plain http.
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function community() {
    return fixedCommunity || ($("community") ? $("community").value.trim() : "");
  }

  function show(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.className = `message ${kind || "info"}`;
    box.hidden = !text;
    if (text && kind === "error") box.scrollIntoView({ block: "nearest" });
  }

  class ApiError extends Error {
    constructor(status, code, reason) {
      super(reason);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, options) {
    let response;
    try {
      response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    } catch (e) {
      throw new ApiError(0, "network", "无法连接服务器，请检查网络后再试（已填写的内容不会丢失）");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      const reason = (data && data.reason) || `服务器返回错误（${response.status}）`;
      if (response.status === 401) throw new ApiError(401, "unauthorized", `${reason}。请点右上角“退出登录”后重新登录。`);
      throw new ApiError(response.status, (data && data.error) || "http_error", reason);
    }
    return data;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function emptyRow(tbody, colspan, text) {
    tbody.replaceChildren();
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(tr, text);
    td.colSpan = colspan;
    tbody.appendChild(tr);
  }

  function signed(points) {
    return points > 0 ? `+${points}` : String(points);
  }

  function query(params) {
    const q = new URLSearchParams();
    Object.entries(params).forEach(([k, v]) => { if (v) q.set(k, v); });
    return q.toString();
  }

  function needCommunity() {
    if (community()) return true;
    show("请先在右上角填写社区编号", "error");
    return false;
  }

  // --- ① find a subject ------------------------------------------------------------------------------
  async function search(event) {
    if (event) event.preventDefault();
    if (!needCommunity()) return;
    const tbody = $("subjects").tBodies[0];
    emptyRow(tbody, 4, "查找中…");
    try {
      const data = await api(`/subjects?${query({ community_id: community(), q: $("q").value.trim() })}`);
      const items = data.items || [];
      if (!items.length) { emptyRow(tbody, 4, "没有找到，请换个姓名或编号再试"); return; }
      tbody.replaceChildren();
      items.forEach((s) => {
        const tr = document.createElement("tr");
        cell(tr, s.name || s.subject_id).title = s.subject_id;
        cell(tr, (s.category_titles || (s.categories || []).map((c) => label(CATEGORIES, c))).join("、"));
        cell(tr, label(STATUSES, s.status));
        const td = cell(tr, "");
        const pick = document.createElement("button");
        pick.type = "button";
        pick.className = "small";
        pick.textContent = "选择";
        pick.dataset.subjectId = s.subject_id;
        pick.addEventListener("click", () => choose(s));
        td.appendChild(pick);
        tbody.appendChild(tr);
      });
    } catch (e) {
      emptyRow(tbody, 4, "查找失败");
      show(e.message, "error");
    }
  }

  async function choose(subject) {
    state.subject = subject;
    const cats = (subject.category_titles || (subject.categories || []).map((c) => label(CATEGORIES, c))).join("、");
    $("selected").textContent = `已选择：${subject.name}（${cats}，编号 ${subject.subject_id}）`;
    $("selected").classList.add("chosen");
    state.pendingKey = null;
    show("", "info");
    ensureSubjectOption(subject);
    if (window.matchMedia("(max-width: 900px)").matches) $("entry").scrollIntoView({ block: "start" }); // stacked
    await loadRules();
  }

  // --- ② rules and entry -----------------------------------------------------------------------------
  async function loadRules() {
    const select = $("rule");
    const keep = select.value;
    select.disabled = true;
    select.replaceChildren(new Option("加载积分项目中…", ""));
    const byCode = new Map();
    try {
      // The catalogue is versioned by month: list the rules in force in the month the item happened.
      const month = ($("occurred_on").value || today()).slice(0, 7);
      state.rulesMonth = month;
      for (const category of state.subject.categories || []) {
        const data = await api(`/rules?${query({ category, month })}`);
        (data.rules || []).forEach((r) => byCode.set(r.code, r));
      }
    } catch (e) {
      show(e.message, "error");
    }
    state.rules = Array.from(byCode.values());
    fillRules(keep);
  }

  function fillRules(keep) {
    const select = $("rule");
    const previous = keep === undefined ? select.value : keep;
    const wanted = state.rules.filter((r) => (state.mode === "deduction" ? r.points_per_unit < 0 : r.points_per_unit > 0))
      .filter(mayRecord);
    select.replaceChildren();
    if (!state.subject) {
      select.appendChild(new Option("请先选择积分主体", ""));
    } else if (!wanted.length) {
      select.appendChild(new Option(state.mode === "deduction" ? "该主体没有可用的减分项目" : "该主体没有可用的加分项目", ""));
    } else {
      select.appendChild(new Option("请选择积分项目", ""));
      const groups = new Map();
      wanted.forEach((r) => {
        const dim = r.dimension_title || label(DIMENSIONS, r.dimension);
        if (!groups.has(dim)) groups.set(dim, []);
        groups.get(dim).push(r);
      });
      groups.forEach((rules, dim) => {
        const group = document.createElement("optgroup");
        group.label = dim;
        rules.forEach((r) => group.appendChild(new Option(`${r.title}（${signed(r.points_per_unit)} 分/${r.unit}）`, r.code)));
        select.appendChild(group);
      });
    }
    if (previous && wanted.some((r) => r.code === previous)) select.value = previous;
    select.disabled = !wanted.length;
    $("submit").disabled = state.busy || !wanted.length;
    describeRule();
  }

  function mayRecord(rule) {
    // The catalogue says who may record each rule (deductions: recorders and supervisors only).
    return !Array.isArray(rule.recorded_by) || rule.recorded_by.includes(role);
  }

  function score(rule, quantity) {
    // Same as the service: points_per_unit × quantity × weight, rounded half away from zero.
    const exact = rule.points_per_unit * quantity * (rule.weight || 1);
    return Math.sign(exact) * Math.round(Math.abs(exact));
  }

  function currentRule() {
    return state.rules.find((r) => r.code === $("rule").value) || null;
  }

  function fillCategories(rule) {
    // Rankings are per category: when the rule fits several of the subject's categories, the recorder says which.
    const fits = rule && state.subject
      ? (state.subject.categories || []).filter((c) => !rule.categories || rule.categories.includes(c)) : [];
    const select = $("category");
    const previous = select.value;
    select.replaceChildren(...fits.map((c) => new Option(label(CATEGORIES, c), c)));
    if (fits.includes(previous)) select.value = previous;
    $("category-row").hidden = fits.length < 2;
  }

  function describeRule() {
    const r = currentRule();
    const info = $("rule-info");
    fillCategories(r);
    if (!r) { info.textContent = ""; return; }
    const parts = [`每${r.unit} ${signed(r.points_per_unit)} 分`];
    if (r.weight && r.weight !== 1) parts.push(`权重 ×${r.weight}`);
    if (r.monthly_cap) parts.push(`每月上限 ${r.monthly_cap} 分`);
    if (r.evidence_required) parts.push("须附佐证材料");
    info.textContent = parts.join("；");
    const qty = parseInt($("quantity").value, 10);
    $("quantity").max = String(r.max_quantity || 1000);
    if (qty > 0) info.textContent += `；本次 ${signed(score(r, qty))} 分`;
  }

  function setMode(mode) {
    state.mode = mode;
    state.pendingKey = null;
    const deduction = mode === "deduction";
    $("tab-declaration").classList.toggle("active", !deduction);
    $("tab-deduction").classList.toggle("active", deduction);
    $("tab-declaration").setAttribute("aria-selected", String(!deduction));
    $("tab-deduction").setAttribute("aria-selected", String(deduction));
    $("description-label").textContent = deduction ? "减分原因（必填）" : "情况说明";
    $("description").placeholder = deduction ? "例如：楼道堆放杂物，经两次提醒未清理" : "例如：帮助 3 户搬迁家庭搬运家具";
    $("submit").textContent = deduction ? "提交减分" : "提交申报";
    $("entry-form").classList.toggle("deduction", deduction);
    fillRules();
  }

  function entryBody() {
    const rule = currentRule();
    if (!state.subject) throw new Error("请先选择积分主体");
    if (!rule) throw new Error("请选择积分项目");
    const quantity = Number($("quantity").value);
    const most = rule.max_quantity || 1000;
    if (!Number.isInteger(quantity) || quantity < 1 || quantity > most) throw new Error(`数量应为 1 到 ${most} 之间的整数`);
    const occurredOn = $("occurred_on").value;
    if (!occurredOn) throw new Error("请填写发生日期");
    if (occurredOn > today()) throw new Error("发生日期不能晚于今天");
    const text = $("description").value.trim();
    const evidence = $("evidence").value.split("\n").map((s) => s.trim()).filter(Boolean);
    if (rule.evidence_required && !evidence.length) throw new Error("该积分项目须附佐证材料，请填写照片编号或文件名");
    const common = {
      community_id: community(), subject_id: state.subject.subject_id, rule_code: rule.code, quantity,
      occurred_on: occurredOn, evidence,
    };
    if (!$("category-row").hidden) common.category = $("category").value;
    if (state.mode === "deduction") {
      if (!text) throw new Error("减分必须填写原因");
      return Object.assign(common, { reason: text });
    }
    return Object.assign(common, { channel: "oral", description: text });
  }

  async function submitEntry(event) {
    event.preventDefault();
    if (state.busy) return; // a double click while the first request is in flight
    let payload;
    try {
      if (!needCommunity()) return;
      payload = entryBody();
    } catch (e) {
      show(e.message, "error");
      return;
    }
    // One key per filled-in form: a retry of the same form (double click, lost answer) is not counted twice.
    if (!state.pendingKey) state.pendingKey = newKey();
    const path = state.mode === "deduction" ? "/deductions" : "/declarations";
    const button = $("submit");
    state.busy = true;
    button.disabled = true;
    show("提交中…", "info");
    try {
      const result = await api(path, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": state.pendingKey },
        body: JSON.stringify(payload),
      });
      const rule = currentRule();
      const points = result && typeof result.points === "number" ? result.points : score(rule, payload.quantity);
      show(`已录入：${state.subject.name} · ${rule.title} × ${payload.quantity}，${signed(points)} 分（待审核）`, "success");
      state.pendingKey = null;
      $("quantity").value = "1";
      $("description").value = "";
      $("evidence").value = "";
      describeRule();
      showInLedger(result && result.item_id); // not awaited: the ledger refreshes in the background
      // Stay disabled a moment: the second click of a double click must not send the (reset) form again.
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } catch (e) {
      if (e.status && e.status !== 0) state.pendingKey = null; // refused: nothing was recorded, a fix is a new request
      show(e.message, "error");
    } finally {
      state.busy = false;
      button.disabled = $("rule").disabled;
    }
  }

  async function showInLedger(itemId) {
    // The ledger is a projection of the log: the new item shows up a moment after it was accepted.
    for (let attempt = 0; attempt < 20; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, attempt ? 500 : 200));
      const items = await loadLedger();
      if (!itemId || !items || items.some((i) => i.item_id === itemId)) return;
    }
  }

  // --- ③ ledger --------------------------------------------------------------------------------------
  function ensureSubjectOption(subject) {
    const select = $("f-subject");
    if (Array.from(select.options).some((o) => o.value === subject.subject_id)) return;
    select.appendChild(new Option(subject.name || subject.subject_id, subject.subject_id));
  }

  function ledgerFilters() {
    return {
      community_id: community(), month: $("f-month").value, subject_id: $("f-subject").value,
      status: $("f-status").value, channel: $("f-channel").value,
    };
  }

  async function loadLedger(event) {
    if (event) event.preventDefault();
    const filters = ledgerFilters();
    $("csv").href = `/ledger.csv?${query(filters)}`;
    const tbody = $("ledger-table").tBodies[0];
    const totals = $("totals").tBodies[0];
    if (!filters.community_id) { emptyRow(tbody, 11, "请先填写社区编号"); return null; }
    try {
      const data = await api(`/ledger?${query(filters)}`);
      const items = data.items || [];
      if (!items.length) emptyRow(tbody, 11, "本条件下没有记录");
      else tbody.replaceChildren();
      items.forEach((i) => {
        const tr = document.createElement("tr");
        tr.dataset.itemId = i.item_id;
        cell(tr, i.occurred_on);
        cell(tr, i.subject_name || i.subject_id).title = i.subject_id;
        cell(tr, i.category_title || label(CATEGORIES, i.category));
        cell(tr, i.rule_title || i.rule_code).title = i.rule_code;
        cell(tr, label(DIMENSIONS, i.dimension));
        cell(tr, signed(i.points), `num ${i.points < 0 ? "minus" : "plus"}`);
        cell(tr, label(CHANNELS, i.channel));
        cell(tr, i.entered_by);
        cell(tr, i.declared_by === i.subject_id ? (i.subject_name || i.declared_by) : i.declared_by);
        cell(tr, (i.evidence || []).join("、"));
        cell(tr, label(STATUSES, i.status));
        tbody.appendChild(tr);
        ensureSubjectOption({ subject_id: i.subject_id, name: i.subject_name });
      });
      const sums = data.totals || [];
      if (!sums.length) emptyRow(totals, 2, "—");
      else totals.replaceChildren();
      sums.forEach((t) => {
        const tr = document.createElement("tr");
        cell(tr, t.subject_name || t.subject_id).title = t.subject_id;
        cell(tr, signed(t.points), `num ${t.points < 0 ? "minus" : "plus"}`);
        totals.appendChild(tr);
      });
      return items;
    } catch (e) {
      emptyRow(tbody, 11, "台账加载失败");
      show(e.message, "error");
      return null;
    }
  }

  // --- wiring ----------------------------------------------------------------------------------------
  $("f-month").value = today().slice(0, 7);
  $("ledger-form").addEventListener("submit", loadLedger);
  ["f-month", "f-subject", "f-status", "f-channel"].forEach((id) => $(id).addEventListener("change", loadLedger));
  if ($("community")) $("community").addEventListener("change", () => { $("f-subject").length = 1; loadLedger(); });

  if (mayEnter) {
    $("occurred_on").value = today();
    $("occurred_on").max = today();
    $("search-form").addEventListener("submit", search);
    $("tab-declaration").addEventListener("click", () => setMode("declaration"));
    $("tab-deduction").addEventListener("click", () => setMode("deduction"));
    $("rule").addEventListener("change", () => { state.pendingKey = null; describeRule(); });
    $("category").addEventListener("change", () => { state.pendingKey = null; });
    $("quantity").addEventListener("input", describeRule);
    $("occurred_on").addEventListener("change", () => {
      const month = $("occurred_on").value.slice(0, 7);
      if (state.subject && month && month !== state.rulesMonth) loadRules();
    });
    ["quantity", "occurred_on", "description", "evidence"].forEach((id) =>
      $(id).addEventListener("input", () => { state.pendingKey = null; }));
    $("entry-form").addEventListener("submit", submitEntry);
  }
  loadLedger();
})();
