// Texts in Simplified Chinese and English. The language follows the browser until the user
// picks one (remembered in localStorage).
import { ref } from "vue";

export type Locale = "zh-CN" | "en";

const en = {
  title: "millstream",
  "nav.overview": "Overview",
  "nav.collection": "Collection",
  "nav.display": "Display",
  "nav.analysis": "Analysis",
  language: "中文",
  "fleet.title": "Fleet",
  "fleet.running": "Running",
  "fleet.free": "Free",
  "fleet.holding": "Holding",
  "fleet.unknown": "Unknown",
  "rate.title": "Ingest",
  "rate.messages": "messages/s",
  "rate.samples": "samples/s",
  "broker.title": "Broker",
  "broker.connected": "connected",
  "broker.disconnected": "disconnected",
  "devices.title": "Devices",
  "devices.device": "Device",
  "devices.state": "State",
  "devices.items": "Items",
  "devices.samples": "Samples",
  "devices.lastSeen": "Last seen",
  "devices.empty": "No devices yet — start the simulator with `millstream sim --broker mqtt://127.0.0.1:1883 -n 3`, or run `millstream demo`.",
  "sinks.title": "Stores",
  "sinks.name": "Sink",
  "sinks.health": "Health",
  "sinks.queued": "Queued",
  "sinks.spooled": "Spooled",
  "sinks.written": "Written",
  "sinks.failed": "Failed",
  "sinks.dropped": "Dropped",
  "sinks.lastError": "Last error",
  "sinks.healthy": "healthy",
  "sinks.failing": "failing",
  "dead.title": "Dead letters",
  "dead.none": "none",
  "error.api": "The millstream API does not answer ({reason}). Is the engine running?",
  "ago.s": "{n} s ago",
  "ago.now": "just now",
  "display.controls": "Chart settings",
  "display.span": "Time span",
  "display.pause": "Pause",
  "display.resume": "Resume",
  "display.live": "live",
  "display.offline": "not connected",
  "display.items": "Items",
  "display.chart": "Live values of the chosen items",
  "display.timeline": "States of the chosen text items over time",
  "analysis.item": "Item",
  "analysis.size": "Window",
  "analysis.count": "count",
  "analysis.band": "min–max",
  "analysis.mean": "mean",
  "analysis.csv": "Export CSV",
  "analysis.windows": "{n} windows",
  "analysis.chart": "Window aggregates of the chosen item",
  "analysis.range": "Time range",
  "analysis.loading": "computing from the lake…",
  "analysis.noHistory": "The lake holds no samples of this item in the range (files appear once completed, see roll_age).",
  "range.live": "Live",
  "range.1h": "Last hour (lake)",
  "range.6h": "Last 6 hours (lake)",
  "range.24h": "Last 24 hours (lake)",
  "range.7d": "Last 7 days (lake)",
  "range.custom": "Custom (lake)",
  "range.from": "From",
  "range.to": "To",
  "range.invalid": "Choose a start (and optionally an end) time.",
  "range.order": "The start must be before the end.",
  "collection.url": "Broker URL",
  "collection.token": "API token (if set)",
  "collection.connect": "Connect",
  "collection.switched": "Now taking data from {broker}",
  "collection.hint": "mqtt:// or mqtts:// (TLS); user and password go in the URL. Polling is set in the pipeline file (source.poll).",
  "collection.model": "Machines and their NC-Link model",
  "collection.ask": "Ask now",
  "collection.waiting": "asking the machine…",
  "collection.value": "Value",
  "collection.time": "Time",
} as const;

export type Key = keyof typeof en;

const zh: Record<Key, string> = {
  title: "millstream",
  "nav.overview": "总览",
  "nav.collection": "数据采集",
  "nav.display": "数据显示",
  "nav.analysis": "数据分析",
  language: "English",
  "fleet.title": "机床状态",
  "fleet.running": "运行",
  "fleet.free": "空闲",
  "fleet.holding": "暂停",
  "fleet.unknown": "未知",
  "rate.title": "接入速率",
  "rate.messages": "消息/秒",
  "rate.samples": "采样/秒",
  "broker.title": "消息代理",
  "broker.connected": "已连接",
  "broker.disconnected": "未连接",
  "devices.title": "设备",
  "devices.device": "设备",
  "devices.state": "状态",
  "devices.items": "数据项",
  "devices.samples": "采样数",
  "devices.lastSeen": "最近上报",
  "devices.empty": "还没有设备——用 `millstream sim --broker mqtt://127.0.0.1:1883 -n 3` 启动模拟器，或运行 `millstream demo`。",
  "sinks.title": "存储",
  "sinks.name": "存储",
  "sinks.health": "健康",
  "sinks.queued": "排队",
  "sinks.spooled": "磁盘缓存",
  "sinks.written": "已写入",
  "sinks.failed": "失败",
  "sinks.dropped": "丢弃",
  "sinks.lastError": "最近错误",
  "sinks.healthy": "正常",
  "sinks.failing": "故障",
  "dead.title": "死信",
  "dead.none": "无",
  "error.api": "millstream API 无响应（{reason}）。引擎在运行吗？",
  "ago.s": "{n} 秒前",
  "ago.now": "刚刚",
  "display.controls": "图表设置",
  "display.span": "时间范围",
  "display.pause": "暂停",
  "display.resume": "继续",
  "display.live": "实时",
  "display.offline": "未连接",
  "display.items": "数据项",
  "display.chart": "所选数据项的实时数值",
  "display.timeline": "所选文本数据项的状态随时间变化",
  "analysis.item": "数据项",
  "analysis.size": "窗口",
  "analysis.count": "样本数",
  "analysis.band": "最小–最大",
  "analysis.mean": "均值",
  "analysis.csv": "导出 CSV",
  "analysis.windows": "{n} 个窗口",
  "analysis.chart": "所选数据项的窗口聚合",
  "analysis.range": "时间范围",
  "analysis.loading": "正在从数据湖计算…",
  "analysis.noHistory": "数据湖在此范围内没有该数据项的样本（文件完成后才可见，见 roll_age）。",
  "range.live": "实时",
  "range.1h": "最近 1 小时（数据湖）",
  "range.6h": "最近 6 小时（数据湖）",
  "range.24h": "最近 24 小时（数据湖）",
  "range.7d": "最近 7 天（数据湖）",
  "range.custom": "自定义（数据湖）",
  "range.from": "开始",
  "range.to": "结束",
  "range.invalid": "请选择开始时间（结束时间可选）。",
  "range.order": "开始时间必须早于结束时间。",
  "collection.url": "消息代理地址",
  "collection.token": "API 令牌（如已设置）",
  "collection.connect": "连接",
  "collection.switched": "正在从 {broker} 接收数据",
  "collection.hint": "mqtt:// 或 mqtts://（TLS）；用户名和密码写在地址中。轮询在管道文件中设置（source.poll）。",
  "collection.model": "设备及其 NC-Link 模型",
  "collection.ask": "立即查询",
  "collection.waiting": "正在查询设备…",
  "collection.value": "值",
  "collection.time": "时间",
};

const messages: Record<Locale, Record<Key, string>> = { en, "zh-CN": zh };

function initial(): Locale {
  const saved = globalThis.localStorage?.getItem("millstream.locale");
  if (saved === "en" || saved === "zh-CN") return saved;
  const browser = globalThis.navigator?.language ?? "en";
  return browser.toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

export const locale = ref<Locale>(initial());

export function setLocale(next: Locale): void {
  locale.value = next;
  globalThis.localStorage?.setItem("millstream.locale", next);
  document.documentElement.lang = next;
}

/** The text for `key` in the current language, with `{name}` placeholders filled in. */
export function t(key: Key, values: Record<string, string | number> = {}): string {
  let text = messages[locale.value][key];
  for (const [name, value] of Object.entries(values)) {
    text = text.replace(`{${name}}`, String(value));
  }
  return text;
}
