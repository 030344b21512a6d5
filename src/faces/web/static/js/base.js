// Every page: the log-out button.
import {api} from "./api.js";
import {toast} from "./ui.js";

const logout = document.getElementById("logout-button");
if (logout) {
  logout.addEventListener("click", async () => {
    try {
      await api("POST", "/api/logout");
      window.location.assign("/login");
    } catch (err) {
      toast(err.message, "error");
    }
  });
}
