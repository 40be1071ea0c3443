/* Simpul map: kecamatan shaded by open reports, a point per report with coordinates.
   Data from /peta/data.json (same filters as the ticket list), boundaries from
   /peta/kecamatan.geojson; tiles only when the hub is given a tile URL. Leaflet (BSD-2-Clause). */
(function () {
  "use strict";
  var SHADES = ["#f1f4f2", "#c7e3d6", "#8cc7ad", "#4f9f80", "#0b5d4b"];
  var DOT = { menunggu: "#b45309", diproses: "#1d4ed8", selesai: "#15803d", ditolak: "#6b7280", digabung: "#6b7280" };

  function shade(n, top) {
    if (!n) return SHADES[0];
    var i = Math.min(4, 1 + Math.floor(3 * n / Math.max(top, 1)));
    return SHADES[i];
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(url + " " + r.status); return r.json(); });
  }

  function draw(el) {
    if (!window.L) return;
    var fallback = el.querySelector(".map-fallback");
    if (fallback) fallback.remove();
    var map = L.map(el, { zoomSnap: 0.25, scrollWheelZoom: false, attributionControl: !!el.dataset.tiles });
    if (el.dataset.tiles) {
      L.tileLayer(el.dataset.tiles, { maxZoom: 18, attribution: "Peta dasar: penyedia ubin" }).addTo(map);
    }
    Promise.all([getJSON(el.dataset.geo), getJSON(el.dataset.src)]).then(function (res) {
      var geo = res[0], data = res[1], counts = data.kecamatan || {};
      var top = 0;
      Object.keys(counts).forEach(function (k) { if (k !== "-") top = Math.max(top, counts[k].open); });
      var layer = L.geoJSON(geo, {
        style: function (f) {
          var c = counts[f.properties.code] || { open: 0 };
          return { color: "#334", weight: 1, fillOpacity: el.dataset.tiles ? 0.55 : 0.9, fillColor: shade(c.open, top) };
        },
        onEachFeature: function (f, lyr) {
          var c = counts[f.properties.code] || { open: 0, total: 0 };
          lyr.bindTooltip(f.properties.name + ": " + c.open + " terbuka / " + c.total);
          lyr.on("click", function () {
            var base = el.dataset.link || "/peta?";
            var u = new URL(base, location.href);
            u.searchParams.set("kecamatan", f.properties.code);
            location.href = u.pathname + u.search;
          });
        }
      }).addTo(map);
      map.fitBounds(layer.getBounds(), { padding: [4, 4] });
      (data.points || []).forEach(function (p) {
        L.circleMarker([p.lat, p.lng], {
          radius: p.urgency === "darurat" ? 7 : 5, color: "#fff", weight: 1, fillOpacity: 0.95,
          fillColor: DOT[p.status] || "#333"
        }).bindPopup('<a href="/tiket/' + encodeURIComponent(p.code) + '">' + p.code + "</a> · " + p.status_label + " · " + p.opd)
          .addTo(map);
      });
      el.dataset.ready = "1";
    }).catch(function () {
      el.insertAdjacentHTML("beforeend", '<p class="alert">Peta gagal dimuat.</p>');
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("map");
    if (el) draw(el);
  });
})();
