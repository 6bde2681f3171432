"""The report page's fixed stylesheet and scripts (inline: the page loads nothing).

ERROR_RECORDER runs first, in <head>: it copies uncaught errors, rejected promises and
console.error calls into #page-errors, so a reader (and the headless-browser test) sees them.
APP builds the token tooltip from the JSON in #tokdata with textContent only (token text never
becomes markup); a click pins it and puts ``#tok=KEY`` in the address, and opening the page with
such an address pins that token. It marks ``<body data-ready="1">`` when done.
"""

from __future__ import annotations

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;
 padding:12px 20px 40px;color:#1d1d1f;background:#fff}
h1{font-size:20px;margin:6px 0}h2{font-size:16px;margin:22px 0 8px;border-bottom:1px solid #e3e3e3}
h3{font-size:13px;margin:0 0 4px}
.meta,.note{color:#555;font-size:12px}.note{font-style:italic}
#page-errors{white-space:pre-wrap;background:#fde8e8;color:#8a1111;border:1px solid #e5a0a0;
 padding:6px 10px;font:12px ui-monospace,monospace}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;align-items:center;font-size:12px}
.sw{display:inline-block;min-width:46px;padding:1px 5px;text-align:center;border:1px solid #ccc}
.chip{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:-1px}
table.sum{border-collapse:collapse;font-size:12px}
table.sum th,table.sum td{padding:2px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
table.sum th{background:#f4f4f4;position:sticky;top:0}
table.sum td.l,table.sum th.l{text-align:left}
.relgroup{display:inline-block;vertical-align:top;margin:0 14px 10px 0}
.turn{border-left:4px solid #ccc;padding:4px 0 8px 12px;margin:16px 0}
.toks{font:13px/1.9 ui-monospace,"DejaVu Sans Mono",monospace;white-space:pre-wrap;word-break:break-all}
details.prompt .toks,details.prompt pre{opacity:.72}
details.prompt summary{cursor:pointer;font-size:12px;color:#444}
details.prompt pre{white-space:pre-wrap;font:12px ui-monospace,monospace;margin:4px 0}
.t{border-bottom:3px solid #ccc;cursor:pointer}
.t:hover,.t.pin{outline:1px solid #222}
.h4,.h5{color:#fff}
.gen-label{font-size:11px;color:#555;margin:4px 0 0}
#tip{position:absolute;z-index:10;max-width:380px;background:#fff;border:1px solid #999;
 box-shadow:0 2px 8px rgba(0,0,0,.25);padding:6px 8px;font-size:12px}
#tip .piece{font:13px ui-monospace,monospace;margin-bottom:4px;word-break:break-all}
#tip table{border-collapse:collapse}#tip td{padding:0 6px 0 0;vertical-align:top}
#tip caption{text-align:left;font-weight:bold;padding-top:4px}
#tip .alts td:first-child{font-family:ui-monospace,monospace}
#tip tr.chosen{font-weight:bold}
"""

ERROR_RECORDER = """
(function(){var seen=[];
function show(){var el=document.getElementById('page-errors');if(el&&seen.length){
 el.textContent=seen.join('\\n');el.hidden=false;}}
function record(m){seen.push(String(m));show();}
window.addEventListener('error',function(e){record('error: '+(e.message||e.type)+
 (e.lineno?' (line '+e.lineno+')':''));},true);
window.addEventListener('unhandledrejection',function(e){record('unhandled rejection: '+e.reason);});
var original=console.error;
console.error=function(){record('console.error: '+Array.prototype.join.call(arguments,' '));
 return original.apply(console,arguments);};
document.addEventListener('DOMContentLoaded',show);})();
"""

APP = """
(function(){
var data=JSON.parse(document.getElementById('tokdata').textContent);
var tip=document.createElement('div');tip.id='tip';tip.hidden=true;document.body.appendChild(tip);
var pinned=null;
function num(x,d){return x===null||x===undefined?'\\u2013':Number(x).toFixed(d);}
function row(t,k,v){var r=t.insertRow();r.insertCell().textContent=k;r.insertCell().textContent=v;}
function lookup(el){var m=/^(\\d+)([pg])(\\d+)$/.exec(el.dataset.k||'');
 var turn=m&&data[m[1]];return turn?turn[m[2]][+m[3]]:null;}
function fill(d){tip.textContent='';
 var p=document.createElement('div');p.className='piece';p.textContent=JSON.stringify(d[0]);tip.appendChild(p);
 var t=document.createElement('table');t.className='stats';
 row(t,'role',d[1]);row(t,'token id',d[2]);row(t,'entropy',num(d[3],3)+' bits');
 row(t,'surprisal',num(d[4],3)+' bits');row(t,'end-of-turn prob',num(d[5],4));
 row(t,'varentropy',num(d[6],3)+' bits\\u00b2');
 if(d[12])row(t,'H \\u00d7 V',d[12]);
 if(d[7]!==null)row(t,'sampling entropy',num(d[7],3)+' bits');
 if(d[9])row(t,'truncated','tail mass '+num(d[10],4));
 if(d[13])row(t,'entropy in','['+num(d[13][0],3)+', '+(d[13][1]===null?'\u221e':num(d[13][1],3))+'] bits');
 if(d[14])row(t,'end-of-turn in','['+num(d[14][0],4)+', '+num(d[14][1],4)+']');
 if(d[11])row(t,'bytes',d[11]);
 tip.appendChild(t);
 if(d[8].length){var a=document.createElement('table');a.className='alts';
  a.createCaption().textContent='top alternatives';
  d[8].forEach(function(x){var r=a.insertRow();r.insertCell().textContent=JSON.stringify(x[0]);
   r.insertCell().textContent=x[1]===null?'\\u2013':(100*x[1]).toFixed(2)+'%';
   if(x[0]===d[0]&&!d[11])r.className='chosen';});
  tip.appendChild(a);}}
function show(el){var d=lookup(el);if(!d)return;fill(d);tip.hidden=false;
 var r=el.getBoundingClientRect(),w=document.documentElement.clientWidth;
 tip.style.left=(window.scrollX+Math.max(4,Math.min(r.left,w-tip.offsetWidth-8)))+'px';
 tip.style.top=(window.scrollY+r.bottom+4)+'px';}
function unpin(){if(pinned){pinned.classList.remove('pin');pinned=null;}}
function pin(el){unpin();pinned=el;el.classList.add('pin');show(el);
 history.replaceState(null,'','#tok='+el.dataset.k);}
document.addEventListener('mouseover',function(e){var el=e.target.closest&&e.target.closest('.t');
 if(el&&!pinned)show(el);});
document.addEventListener('mouseout',function(e){if(!pinned&&e.target.closest&&e.target.closest('.t'))
 tip.hidden=true;});
document.addEventListener('click',function(e){var el=e.target.closest&&e.target.closest('.t');
 if(el){pin(el);}else if(!tip.contains(e.target)){unpin();tip.hidden=true;}});
var m=/^#tok=(\\d+[pg]\\d+)$/.exec(location.hash);
if(m){var el=document.querySelector('.t[data-k="'+m[1]+'"]');
 if(el){var det=el.closest('details');if(det)det.open=true;var r=el.getBoundingClientRect();
  if(r.top<0||r.bottom>window.innerHeight)el.scrollIntoView({block:'center'});pin(el);}}
document.body.dataset.ready='1';
})();
"""
