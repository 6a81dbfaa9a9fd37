; Parley's Windows installer (Inno Setup 6): a per-user install that needs no administrator.
;
; Built by packaging/build.py --installer on Windows, which passes the version from
; parley.__version__ and the folders (run from the checkout's root):
;   iscc /DAppVersion=0.1.0 /DSourceDir=dist\parley /DOutputDir=dist ^
;        /DIconFile=build\pyinstaller\parley\icons\parley.ico packaging\windows\parley.iss
;
; What it does: copies the one-folder build to %LOCALAPPDATA%\Programs\Parley, adds a Start
; menu entry (and, if ticked, a desktop shortcut), optionally puts the folder holding
; parley-cli.exe on the user's PATH, and registers an uninstaller (Settings > Apps). It
; associates no file types. Conversations, the index and settings live in %LOCALAPPDATA%\parley
; and keys in the Windows Credential Manager: the uninstaller leaves both.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=... (packaging/build.py does)
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\parley"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif

[Setup]
AppId={{5B0F3A1E-8C47-4E2D-9A6B-7D1C2E3F4A50}
AppName=Parley
AppVersion={#AppVersion}
AppVerName=Parley {#AppVersion}
AppPublisher=Parley
DefaultDirName={autopf}\Parley
DefaultGroupName=Parley
DisableProgramGroupPage=yes
; Per user, never elevated: {autopf} is then %LOCALAPPDATA%\Programs.
PrivilegesRequired=lowest
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#OutputDir}
OutputBaseFilename=Parley-{#AppVersion}-windows-x64-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
UninstallDisplayIcon={app}\parley.exe
UninstallDisplayName=Parley
ChangesEnvironment=yes
CloseApplications=yes
#ifdef IconFile
SetupIconFile={#IconFile}
#endif

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add the parley-cli command to my PATH"; GroupDescription: "Command line:"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[InstallDelete]
; An upgrade replaces the bundle whole: files a newer build no longer has must not linger.
Type: filesandordirs; Name: "{app}\_internal"

[Icons]
Name: "{autoprograms}\Parley"; Filename: "{app}\parley.exe"
Name: "{autodesktop}\Parley"; Filename: "{app}\parley.exe"; Tasks: desktopicon

[Registry]
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\parley.exe"; Description: "{cm:LaunchProgram,Parley}"; Flags: nowait postinstall skipifsilent

[Code]
function NeedsAddPath(Dir: string): Boolean;
var
  Path: string;
begin
  if not RegQueryStringValue(HKCU, 'Environment', 'Path', Path) then
    Path := '';
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;

procedure RemoveFromPath(Dir: string);
var
  Path: string;
  P: Integer;
begin
  if not RegQueryStringValue(HKCU, 'Environment', 'Path', Path) then
    exit;
  P := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';');
  if P = 0 then
    exit;
  { P indexes ';' + Path + ';': Dir starts at Path[P], its ';' separator is Path[P - 1]. }
  if P = 1 then
    Delete(Path, 1, Length(Dir) + 1)
  else
    Delete(Path, P - 1, Length(Dir) + 1);
  RegWriteExpandStringValue(HKCU, 'Environment', 'Path', Path);
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
    RemoveFromPath(ExpandConstant('{app}'));
end;
