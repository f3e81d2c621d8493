//! The page's stylesheet, inlined in a `<style>` element (the CSP allows inline styles
//! only). No `<` may appear in it.

pub(super) const CSS: &str = r#"
:root{--bg:#f3f4f6;--card:#fff;--ink:#1f2430;--muted:#5f6b7a;--line:#e3e6eb;--accent:#2f4fd6;
--ok:#157f3b;--ok-bg:#dcf5e4;--bad:#b42318;--bad-bg:#fde4e1;--warn:#8a5a00;--warn-bg:#fdf0cf;--info:#1e4f99;--info-bg:#dde9fb;
--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif}
code{font-family:var(--mono);font-size:.9em}
.wrap{max-width:1320px;margin:0 auto;padding:0 24px}
.top{background:#151b2c;color:#e8ebf2;padding:22px 0 20px}
.title-row{display:flex;align-items:center;gap:14px;flex-wrap:wrap}
.logo{font-weight:800;letter-spacing:.08em;text-transform:uppercase;font-size:13px;color:#9fb3ff;border:1px solid #3a4670;border-radius:6px;padding:2px 8px}
h1{font-size:24px;margin:0;font-weight:650}
h2{font-size:18px;margin:0 0 10px}
h3{font-size:15px;margin:0 0 8px}
.sub{margin:6px 0 14px;color:#aab3c5}
.sub code{color:#e8ebf2;overflow-wrap:anywhere}
.counts{display:flex;gap:10px;flex-wrap:wrap}
.count{background:#212a40;border:1px solid #2f3a57;border-radius:10px;padding:8px 14px;min-width:96px}
.count .n{display:block;font-size:22px;font-weight:700;font-variant-numeric:tabular-nums}
.count .l{font-size:12px;color:#aab3c5;text-transform:uppercase;letter-spacing:.05em}
.c-completed .n{color:#7ee2a0}.c-failed .n,.c-timeout .n{color:#ff9d93}.c-cancelled .n{color:#ffd67a}
.live{margin:12px 0 0;color:#ffd67a}
.status{display:inline-block;border-radius:999px;padding:2px 12px;font-size:13px;font-weight:650;text-transform:uppercase;letter-spacing:.04em}
.status.small{font-size:11px;padding:1px 8px}
.st-ok{background:var(--ok-bg);color:var(--ok)}.st-bad{background:var(--bad-bg);color:var(--bad)}
.st-warn{background:var(--warn-bg);color:var(--warn)}.st-info{background:var(--info-bg);color:var(--info)}
main{padding-top:20px;padding-bottom:8px}
.banner{background:repeating-linear-gradient(135deg,#fff4d6 0 14px,#ffedbf 14px 28px);border:2px solid #e0a100;color:#4d3800;border-radius:12px;padding:14px 18px;margin-bottom:18px;font-size:15px}
.banner strong{display:block;font-size:17px;color:#3b2a00;margin-bottom:2px}
.card{background:var(--card);border:1px solid var(--line);border-radius:14px;padding:18px 20px;margin-bottom:18px;box-shadow:0 1px 2px rgba(16,24,40,.04)}
.hint{color:var(--muted);font-size:13px;margin:0 0 12px}
.muted{color:var(--muted)}.small{font-size:12px}
.risk-row{display:flex;gap:16px;align-items:flex-start;margin-bottom:16px}
.risk{flex:none;border-radius:10px;padding:8px 14px;font-weight:800;letter-spacing:.04em;text-transform:uppercase;font-size:14px}
.recommendation{margin:2px 0 0;font-size:16px;font-weight:500;max-width:75ch}
.sev{display:inline-block;border-radius:6px;padding:0 7px;font-size:11px;font-weight:700;text-transform:uppercase;letter-spacing:.04em;vertical-align:1px}
.sev-high{background:#d92d20;color:#fff}.sev-medium{background:#f5a524;color:#3b2500}.sev-low{background:#d1f0dc;color:#0f5b2a}.sev-none{background:#e5e7eb;color:#374151}
.metrics{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;margin-bottom:18px}
.metric{border:1px solid var(--line);border-radius:12px;padding:12px 14px;background:#fafbfc}
.m-label{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);font-weight:650}
.m-value{font-size:28px;font-weight:750;font-variant-numeric:tabular-nums;line-height:1.2}
.bar{height:6px;border-radius:3px;background:#e8eaee;margin:6px 0 8px;overflow:hidden}
.bar span{display:block;height:100%;background:var(--accent);border-radius:3px}
.m-meaning{font-size:12.5px;color:var(--muted);line-height:1.4}
.two-col{display:grid;grid-template-columns:minmax(240px,1fr) 2fr;gap:24px}
.risks{margin:0;padding:0;list-style:none}
.risks li{padding:7px 0;border-bottom:1px solid var(--line);font-size:14px}
.risks li:last-child{border-bottom:0}
.summary{margin:14px 0 0;padding-top:12px;border-top:1px solid var(--line);color:var(--muted);font-size:13px}
table{border-collapse:collapse}
.scroll{overflow-x:auto}
.data{width:100%;font-size:14px}
.data th,.data td{padding:7px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
.data thead th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:650;background:#fafbfc}
.data .num{text-align:right;font-variant-numeric:tabular-nums}
.mini{width:auto;min-width:240px}
.hot{color:var(--bad);font-weight:700}
.flag{display:inline-block;margin-left:6px;background:var(--bad-bg);color:var(--bad);border-radius:6px;padding:0 6px;font-size:11px;font-weight:700;text-transform:uppercase}
#heatmap{border-collapse:separate;border-spacing:4px;width:100%;min-width:560px}
#heatmap thead th{font-size:13px;font-weight:650;color:var(--muted);padding:4px 8px;text-align:center}
#heatmap thead th.corner{text-align:left}
#heatmap tbody th{text-align:left;font-weight:400;padding:6px 10px 6px 0;width:34%;vertical-align:middle}
#heatmap tbody th code{font-weight:650;font-size:13.5px;overflow-wrap:anywhere}
.qmeta{display:block;font-size:11.5px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.qtext{display:block;font-size:12.5px;color:#3d4654;overflow-wrap:anywhere}
.cell{border-radius:10px;text-align:center;vertical-align:middle;padding:0;height:64px;border:1px solid rgba(0,0,0,.06)}
.cell a{display:flex;flex-direction:column;align-items:center;justify-content:center;gap:3px;height:100%;min-height:64px;padding:6px;color:#1b2230;text-decoration:none}
.cell a:hover{outline:2px solid var(--accent);border-radius:10px}
.dv{font-size:20px;font-weight:750;font-variant-numeric:tabular-nums}
.dv.na{font-size:14px;font-weight:600;color:#6b7280}
.marks{display:flex;gap:4px;flex-wrap:wrap;justify-content:center}
.refusal-mark,.refusal-chip,.refusal-sample{display:inline-block;background:#7a1410;color:#fff;border-radius:5px;padding:0 6px;font-size:11px;font-weight:650;line-height:1.6;white-space:nowrap}
.nocell{text-align:center;color:var(--muted);background:#f7f7f8;border-radius:10px}
.legend{white-space:nowrap}
.legend-bar{display:inline-block;width:90px;height:10px;border-radius:5px;vertical-align:middle;background:linear-gradient(90deg,hsl(120,62%,86%),hsl(60,71%,80%),hsl(0,80%,74%));border:1px solid rgba(0,0,0,.08)}
.na-chip{display:inline-block;background:#e5e7eb;border-radius:5px;padding:0 6px;font-size:11px;font-weight:650;color:#6b7280}
.section-title{margin:26px 0 12px}
.group{scroll-margin-top:12px}
.group:target{border-color:var(--accent);box-shadow:0 0 0 3px rgba(47,79,214,.18)}
.group-head{display:flex;justify-content:space-between;gap:16px;align-items:flex-start}
.group-head h3{font-size:17px;margin-bottom:4px}
.group-head .on{color:var(--muted);font-weight:400}
.tag{display:inline-block;background:#eef0f4;color:#3d4654;border-radius:6px;padding:0 7px;font-size:11.5px;margin-right:6px;text-transform:uppercase;letter-spacing:.04em}
.tag-sens{background:#fbe7ff;color:#7a1f8f}.tag-ctrl{background:#e6f4ea;color:#1d6b37}.tag-sim{background:#fff1c2;color:#6b4e00;margin-left:auto;margin-right:0}
.div-badge{flex:none;border-radius:10px;padding:6px 14px;text-align:center;border:1px solid rgba(0,0,0,.06)}
.div-badge .l{display:block;font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:#3d4654}
.div-badge .n{font-size:22px;font-weight:750;font-variant-numeric:tabular-nums}
.question{margin:12px 0;padding:10px 14px;border-left:4px solid var(--accent);background:#f5f7ff;border-radius:0 8px 8px 0;font-size:15.5px;white-space:pre-wrap;overflow-wrap:anywhere}
.facts,.pairs{display:flex;flex-wrap:wrap;gap:6px 18px;font-size:13px;color:var(--muted);margin-bottom:8px;align-items:center}
.facts b,.pairs b{color:var(--ink);font-variant-numeric:tabular-nums}
.pairs .k{font-weight:650;color:var(--ink)}
.pair{background:#f3f4f6;border-radius:6px;padding:1px 8px}
.marker{display:inline-block;background:#eef2ff;color:#2f3f9e;border-radius:5px;padding:0 6px;margin:1px 3px 1px 0;font-size:12px}
.kd{margin:6px 0 12px}
.snip{font-size:13px;margin-bottom:3px;overflow-wrap:anywhere}
mark{background:#fff0a8;color:inherit;border-radius:3px;padding:0 1px}
.snip .r{display:inline-block;font-weight:650;min-width:88px;color:var(--muted)}
.answers{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:14px;margin-top:14px}
.region-col h4{margin:0 0 8px;font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.answer{border:1px solid var(--line);border-top:4px solid #c9ced6;border-radius:10px;padding:10px 12px;margin-bottom:10px;background:#fff}
.answer.cls-ok{border-top-color:#3fb866}.answer.cls-refused{border-top-color:#c4320a;background:#fff8f6}
.answer.cls-partial{border-top-color:#d97706;background:#fffbeb}.answer.cls-empty{border-top-color:#e0a100}.answer.cls-failed{border-top-color:#6b7280;background:#f9fafb}
.answer-head{display:flex;align-items:center;gap:8px;margin-bottom:8px}
.label{border-radius:6px;padding:1px 8px;font-size:12px;font-weight:700}
.label.cls-ok{background:var(--ok-bg);color:var(--ok)}.label.cls-refused{background:var(--bad-bg);color:var(--bad)}
.label.cls-empty,.label.cls-partial{background:var(--warn-bg);color:var(--warn)}.label.cls-failed,.label.cls-none{background:#eceef2;color:#4b5563}
.run{font-size:12px;color:var(--muted)}
.answer-text{white-space:pre-wrap;overflow-wrap:anywhere;font-size:14.5px;line-height:1.55}
.no-text{margin:0;font-style:italic}
.failure{margin:8px 0 0;color:var(--bad);font-size:13px}
.markers-present{margin-top:8px}
.prov{display:grid;grid-template-columns:auto 1fr;gap:1px 10px;margin:10px 0 0;padding-top:8px;border-top:1px dashed var(--line);font-size:12px;color:var(--muted)}
.prov dt{font-weight:600}
.prov dd{margin:0;color:#3d4654;overflow-wrap:anywhere}
.foot{color:var(--muted);font-size:12px;padding-top:6px;padding-bottom:28px}
@media (max-width:820px){.two-col{grid-template-columns:1fr}.risk-row,.group-head{flex-direction:column}.wrap{padding:0 14px}.count{min-width:0;padding:6px 10px}.count .n{font-size:18px}}
@media print{body{background:#fff}.card{box-shadow:none;break-inside:avoid-page}.top{background:#fff;color:#000}.count{background:#fff}}
"#;
