// Starts Swagger UI on /schema/swagger from the gateway's own copy (no inline script: the page's CSP forbids it).
(function () {
  "use strict";
  window.ui = window.SwaggerUIBundle({
    url: "/schema/openapi.json",
    dom_id: "#swagger-container",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIStandalonePreset],
    layout: "BaseLayout"
  });
})();
