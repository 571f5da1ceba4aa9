/* The demo storefront's own code: what a shop does with the chat's events and commands (see embed.js). */
(function () {
  "use strict";
  var names = ["connect", "disconnect", "cart_changed", "product_click", "error"];
  var events = document.getElementById("demo-events");
  var cart = document.getElementById("demo-cart");

  names.forEach(function (name) {
    window.addEventListener("vizochok:" + name, function (evt) {
      var item = document.createElement("li");
      item.dataset.type = name;
      item.textContent = name + " " + JSON.stringify(evt.detail); // textContent: event data is never markup
      events.prepend(item);
      if (name === "cart_changed") {
        var count = (evt.detail.items || []).length; // lines, as the chat's badge counts them
        cart.dataset.count = String(count);
        cart.dataset.total = String(evt.detail.total || 0);
        document.getElementById("demo-cart-count").textContent = String(count);
        document.getElementById("demo-cart-total").textContent = Number(evt.detail.total || 0).toFixed(2);
      }
    });
  });

  document.getElementById("demo-ask-milk").addEventListener("click", function () {
    window.VizochokEmbed.open();
    window.VizochokEmbed.send("milk");
  });
})();
