/* Simpul pages: a little plain JavaScript, no libraries. Every page works without it; this
   only adds live emergencies on the overview, the hotline console's keys and lookups, and
   location/photo help on the public report form. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  /* Overview: poll a small JSON endpoint for new emergencies. */
  function live() {
    var box = $("perhatian");
    if (!box) return;
    var last = parseInt(box.getAttribute("data-last") || "0", 10);
    var opd = box.getAttribute("data-opd") || "";
    var list = $("urgent-list"), status = $("live-status"), pill = $("darurat-open");
    function tick() {
      var url = "/dasbor/live?after=" + last + (opd ? "&opd=" + encodeURIComponent(opd) : "");
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) {
          if (!d) return;
          last = Math.max(last, d.last_id || 0);
          if (pill) pill.textContent = d.darurat_open + " darurat terbuka";
          (d.items || []).slice().reverse().forEach(function (t) {
            var empty = list.querySelector(".empty");
            if (empty) empty.remove();
            var li = el("li", "trow u-darurat fresh"), a = el("a");
            a.href = "/tiket/" + t.code;
            a.appendChild(el("span", "code", t.code));
            a.appendChild(document.createTextNode(" "));
            a.appendChild(el("span", "badge u-darurat", "BARU " + t.at));
            a.appendChild(el("span", "txt", t.text));
            a.appendChild(el("span", "meta", t.opd + " · " + t.kecamatan));
            li.appendChild(a);
            list.insertBefore(li, list.firstChild);
          });
          if (d.items && d.items.length) {
            status.hidden = false;
            status.textContent = d.items.length + " laporan darurat baru";
          }
        })
        .catch(function () { /* offline for a moment: try again next tick */ });
    }
    setInterval(tick, 15000);
  }

  /* Hotline console: Ctrl+Enter saves, Esc clears, caller history, desa list per kecamatan. */
  function konsol() {
    var form = $("console-form");
    if (!form) return;
    var desa = {};
    try { desa = JSON.parse(($("desa-data") || {}).textContent || "{}"); } catch (e) { desa = {}; }
    var kec = $("kecamatan"), desaList = $("desa-list"), phone = $("caller_phone"), hist = $("history");
    function fillDesa() {
      var key = Object.keys(desa).filter(function (k) { return k.toLowerCase() === kec.value.trim().toLowerCase(); })[0];
      desaList.innerHTML = "";
      (desa[key] || []).forEach(function (n) { var o = el("option"); o.value = n; desaList.appendChild(o); });
    }
    kec.addEventListener("input", fillDesa);
    kec.addEventListener("change", fillDesa);
    fillDesa();
    var timer = null;
    function lookup() {
      var v = phone.value.replace(/[^0-9+]/g, "");
      if (v.length < 8) { hist.hidden = true; return; }
      fetch("/konsol/riwayat?phone=" + encodeURIComponent(v), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) {
          hist.innerHTML = "";
          if (!d || !d.tickets.length) { hist.hidden = true; return; }
          hist.appendChild(el("b", null, "Laporan sebelumnya dari nomor ini (" + d.tickets.length + "):"));
          var ul = el("ul");
          d.tickets.forEach(function (t) {
            var li = el("li"), a = el("a", "code", t.code);
            a.href = "/tiket/" + t.code; a.target = "_blank";
            a.tabIndex = -1;  /* keep Tab moving through the form fields */
            li.appendChild(a);
            li.appendChild(document.createTextNode(" " + t.status + " · " + t.at + " · " + t.text));
            ul.appendChild(li);
          });
          hist.appendChild(ul);
          hist.hidden = false;
        }).catch(function () {});
    }
    phone.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(lookup, 350); });
    phone.addEventListener("blur", lookup);
    var saving = false;
    function save() {
      if (saving) return;
      if (!form.reportValidity()) return;
      saving = true;
      var data = new FormData(form);
      fetch(form.action, { method: "POST", body: data, credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json().then(function (d) { return { ok: r.ok, d: d }; }); })
        .then(function (res) {
          var box = $("saved");
          box.innerHTML = "";
          if (!res.ok) {
            box.appendChild(el("p", "alert", res.d.error || "Gagal menyimpan."));
            return;
          }
          var p = el("p", "notice", "Tersimpan: "), a = el("a", "code", res.d.code);
          a.href = "/tiket/" + res.d.code;
          p.appendChild(a);
          if (res.d.opd) p.appendChild(document.createTextNode(" · " + res.d.opd + " · " + (res.d.urgency || "")));
          if (res.d.duplicate) p.appendChild(document.createTextNode(" (sudah tercatat)"));
          box.appendChild(p);
          form.reset();
          form.elements.call_id.value = res.d.next_call_id;
          hist.hidden = true;
          fillDesa();
          phone.focus();
        })
        .catch(function () { form.submit(); })
        .then(function () { saving = false; });
    }
    form.addEventListener("submit", function (e) { e.preventDefault(); save(); });
    document.addEventListener("keydown", function (e) {
      if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); save(); }
      if (e.key === "Escape") { form.reset(); hist.hidden = true; phone.focus(); }
    });
  }

  /* Public report: the phone's location, desa list follows kecamatan, shrink big photos. */
  function lapor() {
    var form = $("lapor-form");
    if (!form) return;
    var geo = $("geo"), st = $("geo-status");
    if (navigator.geolocation && geo) {
      geo.hidden = false;
      geo.addEventListener("click", function () {
        st.textContent = "Mencari lokasi…";
        navigator.geolocation.getCurrentPosition(function (p) {
          $("lat").value = p.coords.latitude.toFixed(6);
          $("lon").value = p.coords.longitude.toFixed(6);
          st.textContent = "Lokasi terpasang (±" + Math.round(p.coords.accuracy) + " m).";
        }, function () { st.textContent = "Lokasi tidak tersedia. Pilih kecamatan dan desa di bawah."; },
        { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
      });
    }
    var kec = $("kec-select"), desa = $("desa-select");
    function filter() {
      Array.prototype.forEach.call(desa.querySelectorAll("optgroup"), function (g) {
        var show = !kec.value || g.getAttribute("data-kec") === kec.value;
        g.hidden = !show; g.disabled = !show;
      });
      var sel = desa.options[desa.selectedIndex];
      if (sel && sel.parentNode.disabled) desa.value = "";
    }
    kec.addEventListener("change", filter);
    filter();
    /* Photos from phone cameras are often 3-5 MB: send a 1600 px JPEG instead (slow 3G). */
    var foto = $("foto");
    if (foto && window.DataTransfer && window.createImageBitmap && document.createElement("canvas").toBlob) {
      foto.addEventListener("change", function () {
        var f = foto.files && foto.files[0];
        if (!f || f.size < 400 * 1024 || !/^image\/(jpeg|png|webp)$/.test(f.type)) return;
        createImageBitmap(f).then(function (img) {
          var s = Math.min(1, 1600 / Math.max(img.width, img.height));
          var c = document.createElement("canvas");
          c.width = Math.round(img.width * s); c.height = Math.round(img.height * s);
          c.getContext("2d").drawImage(img, 0, 0, c.width, c.height);
          c.toBlob(function (b) {
            if (!b || b.size >= f.size) return;
            var dt = new DataTransfer();
            dt.items.add(new File([b], "foto.jpg", { type: "image/jpeg" }));
            foto.files = dt.files;
          }, "image/jpeg", 0.8);
        }).catch(function () {});
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () { live(); konsol(); lapor(); });
})();
// print button of the monthly report (no inline handlers under the CSP)
document.addEventListener("click", function (e) {
  var b = e.target.closest && e.target.closest("[data-print]");
  if (b) { e.preventDefault(); window.print(); }
});
