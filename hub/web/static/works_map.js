/* Simpul public works map (/proyek and /proyek/{kode}): kecamatan boundaries from
   /proyek/kecamatan.geojson, a marker per project with coordinates (a line for roads) from
   /proyek/peta.json; popups with name, value, status and the project page's link. Tiles only
   when the hub is given SIMPUL_MAP_TILES_URL; without them the boundaries alone. No login.
   Leaflet (BSD-2-Clause). Without JavaScript the page keeps its SVG dot plot and list. */
(function () {
  "use strict";
  var COLOR = { kritis: "#c62828", putus: "#c62828", selesai: "#2e7d32", pelaksanaan: "#1565c0" };

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(url + " " + r.status); return r.json(); });
  }

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function popup(p) {
    return '<b class="pp-name">' + esc(p.name) + "</b><br>" + esc(p.value) + " · " + esc(p.status_label) +
      (p.kecamatan_name ? "<br>Kec. " + esc(p.kecamatan_name) : "") +
      '<br><a href="' + esc(p.url) + '">Lihat proyek ' + esc(p.code) + " →</a>";
  }

  function draw(el) {
    if (!window.L) return;
    var fb = el.querySelector(".map-fallback");
    if (fb) fb.remove();
    var map = L.map(el, { zoomSnap: 0.25, scrollWheelZoom: false, attributionControl: !!el.dataset.tiles });
    if (el.dataset.tiles) {
      L.tileLayer(el.dataset.tiles, { maxZoom: 18, attribution: "Peta dasar: penyedia ubin" }).addTo(map);
    }
    var geoP = getJSON(el.dataset.geo).catch(function () { return null; });
    Promise.all([geoP, getJSON(el.dataset.src)]).then(function (res) {
      var geo = res[0], data = res[1], focus = el.dataset.focus || "";
      var bounds = null;
      if (geo) {
        var kec = L.geoJSON(geo, {
          className: "kec-boundary",
          style: function (f) {
            var on = focus && f.properties.code === focus;
            return { color: "#334", weight: on ? 2 : 1, fillColor: on ? "#c7e3d6" : "#f1f4f2",
                     fillOpacity: el.dataset.tiles ? 0.25 : 0.9, className: "kec-boundary" };
          },
          onEachFeature: function (f, lyr) { lyr.bindTooltip("Kec. " + f.properties.name); }
        }).addTo(map);
        bounds = kec.getBounds();
      }
      var marks = L.featureGroup();
      (data.projects || []).forEach(function (p) {
        var c = COLOR[p.status] || "#0b5d4b";
        if (p.line && p.line.length > 1) {
          L.polyline(p.line, { color: c, weight: 5, opacity: 0.85, className: "proyek-line" })
            .bindPopup(popup(p)).addTo(marks);
        }
        L.circleMarker([p.lat, p.lng], { radius: 7, color: "#fff", weight: 2, fillOpacity: 0.95, fillColor: c,
                                         className: "proyek-marker" })
          .bindPopup(popup(p)).addTo(marks);
      });
      marks.addTo(map);
      if (el.dataset.single && marks.getLayers().length) {
        map.fitBounds(marks.getBounds(), { padding: [24, 24], maxZoom: 15 });
      } else if (bounds) {
        map.fitBounds(bounds, { padding: [4, 4] });
      } else if (marks.getLayers().length) {
        map.fitBounds(marks.getBounds(), { padding: [24, 24], maxZoom: 15 });
      } else {
        map.setView([-8.1, 111.7], 10);
      }
      el.dataset.ready = "1";
      el.dataset.markers = String(data.projects ? data.projects.length : 0);
    }).catch(function () {
      el.insertAdjacentHTML("beforeend", '<p class="alert">Peta gagal dimuat.</p>');
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("peta-proyek");
    if (el) draw(el);
  });
})();
